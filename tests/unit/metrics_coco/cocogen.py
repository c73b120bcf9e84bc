"""Random COCO-style datasets with the edge cases that break evaluators, and the pycocotools anchor."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def make_dataset(
    seed: int,
    n_images: int = 30,
    n_classes: int = 6,
    max_gt: int = 8,
    crowd_rate: float = 0.1,
    score_decimals: int | None = 1,
    many_dets_images: int = 1,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """GT dict + detection list. Scores rounded to ``score_decimals`` make ties common.

    Covers: crowd GT, classes without GT (the last class never gets GT), images without GT or
    detections, images with detections but no GT, > 100 detections in ``many_dets_images`` images,
    tiny boxes, GT areas differing from the box area, areas exactly on the small/medium/large limits,
    duplicate detections, detections of a category the GT does not list.
    """
    rng = np.random.default_rng(seed)
    images = [{"id": int(i * 3 + 1), "width": 640, "height": 480} for i in range(n_images)]
    cats: list[dict[str, Any]] = [{"id": int(c * 2 + 1), "name": f"c{c}"} for c in range(n_classes)]
    gt_cats = [c["id"] for c in cats[:-1]] if n_classes > 1 else [cats[0]["id"]]
    all_cats = [c["id"] for c in cats]
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []

    def score() -> float:
        s = float(rng.random())
        return round(s, score_decimals) if score_decimals is not None else s

    def box() -> list[float]:
        kind = rng.integers(0, 5)
        if kind == 0:  # tiny
            w, h = rng.uniform(0.5, 4, 2)
        elif kind == 1:  # exactly on an area limit
            side = float(rng.choice([32.0, 96.0]))
            w, h = side, side
        else:
            w, h = rng.uniform(4, 250, 2)
        x, y = rng.uniform(0, 400, 2)
        return [float(x), float(y), float(w), float(h)]

    aid = 1
    for idx, im in enumerate(images):
        mode = idx % 7
        if mode == 0:  # empty image
            continue
        n_gt = 0 if mode == 1 else int(rng.integers(1, max_gt + 1))
        for _ in range(n_gt):
            b = box()
            c = int(rng.choice(gt_cats))
            area = b[2] * b[3] if rng.random() < 0.7 else b[2] * b[3] * float(rng.uniform(0.3, 1.0))
            anns.append(
                {
                    "id": aid,
                    "image_id": im["id"],
                    "category_id": c,
                    "bbox": b,
                    "area": area,
                    "iscrowd": int(rng.random() < crowd_rate),
                }
            )
            aid += 1
            for _ in range(int(rng.integers(0, 4))):
                j = rng.normal(0, max(2.0, 0.15 * min(b[2], b[3])), 4)
                dc = c if rng.random() < 0.85 else int(rng.choice(all_cats))
                db = [
                    float(v) for v in (b[0] + j[0], b[1] + j[1], max(b[2] + j[2], 0.5), max(b[3] + j[3], 0.5))
                ]
                dets.append({"image_id": im["id"], "category_id": dc, "bbox": db, "score": score()})
                if rng.random() < 0.1:  # exact duplicate
                    dets.append(dict(dets[-1]))
        for _ in range(int(rng.integers(0, 5))):  # background detections (mode 1: dets, no GT)
            dets.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.choice(all_cats)),
                    "bbox": box(),
                    "score": score(),
                }
            )
        if rng.random() < 0.05:
            dets.append({"image_id": im["id"], "category_id": 999, "bbox": box(), "score": score()})
    for im in images[2 : 2 + many_dets_images]:  # > 100 detections of one class in one image
        c = gt_cats[0]
        for _ in range(130):
            dets.append({"image_id": im["id"], "category_id": c, "bbox": box(), "score": score()})
    order = rng.permutation(len(dets))
    dets = [dets[i] for i in order]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycoco_eval(gt: dict[str, Any], dets: list[dict[str, Any]]) -> COCOeval:
    """pycocotools' COCOeval after evaluate/accumulate/summarize (its prints swallowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {k: list(v) for k, v in gt.items()}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(d) for d in dets])
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def pycoco_per_class(ev: COCOeval) -> dict[int, tuple[float, float, float]]:
    """Per category (AP, AP50, AP75) from pycocotools' precision array, -1 when undefined."""
    out: dict[int, tuple[float, float, float]] = {}
    prec = ev.eval["precision"]
    for k, cid in enumerate(ev.params.catIds):
        vals = []
        for t in (slice(None), [0], [5]):
            s = prec[t, :, k, 0, -1]
            vals.append(float(np.mean(s[s > -1])) if (s > -1).any() else -1.0)
        out[int(cid)] = (vals[0], vals[1], vals[2])
    return out
