"""COCO engine benchmark: `blindspot eval coco --per-image` against pycocotools, faster-coco-eval, hotcoco.

Generates a COCO-like dataset (default 500 images; the issue's size is ``--images 5000``, ~100
detections per image), writes GT/detection JSON to a temp dir, then times each evaluator as a whole
command in a subprocess (interpreter start-up and JSON loading included) on the same files, prints
seconds and ratios against ours, and checks that every evaluator reports the same 12 numbers.

    .venv/bin/python benchmarks/metrics_engine.py                 # quick
    .venv/bin/python benchmarks/metrics_engine.py --images 5000   # the issue's size
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Each reference evaluator as a script: argv = gt, dets, stats-out.
_PYCOCO = """
import json, sys, contextlib, io
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in ev.stats], open(sys.argv[3], "w"))
"""
_FASTER = """
import json, sys, contextlib, io
from faster_coco_eval import COCO, COCOeval_faster
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    ev = COCOeval_faster(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in ev.stats[:12]], open(sys.argv[3], "w"))
"""
_HOTCOCO = """
import json, sys, contextlib, io
from hotcoco import COCO, COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.load_res(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in list(ev.stats)[:12]], open(sys.argv[3], "w"))
"""
KEYS = ["mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"]
KEYS += ["AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def generate(n_images: int, dets_per_image: int, n_classes: int, gt_per_image: float, seed: int) -> tuple[dict, list]:
    """COCO-like data: log-uniform box sizes, 1% crowd, jittered true positives, background FPs."""
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(gt_per_image, n_images)
    img_of_gt = np.repeat(np.arange(n_images), n_gt)
    total_gt = int(n_gt.sum())
    side = np.exp(rng.uniform(np.log(4), np.log(400), (total_gt, 2)))
    xy = rng.uniform(0, 640 - side.clip(max=600))
    gt_box = np.hstack([xy, side])
    gt_cat = rng.integers(1, n_classes + 1, total_gt)
    crowd = rng.random(total_gt) < 0.01
    area = side[:, 0] * side[:, 1] * rng.uniform(0.5, 1.0, total_gt)
    # Detections: 0-3 jittered copies per GT, then background boxes up to dets_per_image per image.
    copies = rng.integers(0, 4, total_gt)
    src = np.repeat(np.arange(total_gt), copies)
    jit = rng.normal(0, 1, (len(src), 4)) * (0.1 * gt_box[src, 2:4]).repeat(2, axis=1)
    tp_box = gt_box[src] + jit
    tp_box[:, 2:] = np.maximum(tp_box[:, 2:], 1.0)
    tp_cat = np.where(rng.random(len(src)) < 0.9, gt_cat[src], rng.integers(1, n_classes + 1, len(src)))
    tp_img = img_of_gt[src]
    per_img_tp = np.bincount(tp_img, minlength=n_images)
    n_bg = np.maximum(dets_per_image - per_img_tp, 0)
    bg_img = np.repeat(np.arange(n_images), n_bg)
    bg_side = np.exp(rng.uniform(np.log(4), np.log(300), (len(bg_img), 2)))
    bg_box = np.hstack([rng.uniform(0, 640 - bg_side), bg_side])
    bg_cat = rng.integers(1, n_classes + 1, len(bg_img))
    det_img = np.concatenate([tp_img, bg_img])
    det_box = np.vstack([tp_box, bg_box]).round(2)
    det_cat = np.concatenate([tp_cat, bg_cat])
    score = np.concatenate([rng.beta(5, 2, len(tp_img)), rng.beta(2, 5, len(bg_img))]).round(3)
    order = np.lexsort((rng.random(len(det_img)), det_img))
    images = [{"id": i + 1, "width": 640, "height": 640, "file_name": f"{i + 1}.jpg"} for i in range(n_images)]
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)]
    anns = [
        {"id": i + 1, "image_id": im + 1, "category_id": c, "bbox": b, "area": a, "iscrowd": int(cr)}
        for i, (im, c, b, a, cr) in enumerate(
            zip(img_of_gt.tolist(), gt_cat.tolist(), gt_box.round(2).tolist(), area.tolist(), crowd.tolist())
        )
    ]
    dets = [
        {"image_id": im + 1, "category_id": c, "bbox": b, "score": s}
        for im, c, b, s in zip(
            det_img[order].tolist(), det_cat[order].tolist(), det_box[order].tolist(), score[order].tolist()
        )
    ]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--gt-per-image", type=float, default=7.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the best is reported")
    ap.add_argument("--skip", nargs="*", default=[], choices=["pycocotools", "faster-coco-eval", "hotcoco"])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_coco_") as tmp:
        t0 = time.perf_counter()
        gt, dets = generate(args.images, args.dets_per_image, args.classes, args.gt_per_image, args.seed)
        gt_path, det_path = Path(tmp, "gt.json"), Path(tmp, "dets.json")
        gt_path.write_bytes(orjson.dumps(gt))
        det_path.write_bytes(orjson.dumps(dets))
        print(
            f"dataset: {args.images} images, {len(gt['annotations'])} GT, {len(dets)} detections, "
            f"{args.classes} classes ({det_path.stat().st_size / 1e6:.0f} MB dets; {time.perf_counter() - t0:.1f}s)"
        )
        del gt, dets
        ours_out = Path(tmp, "ours.json")
        ours_cmd = [str(BIN / "blindspot"), "eval", "coco", "--gt", str(gt_path), "--dets", str(det_path)]
        ours_cmd += ["--out", str(ours_out), "--per-image", "-q"]
        first = timed(ours_cmd)  # also compiles/caches the numba kernels on a fresh checkout
        runs: dict[str, float] = {"blindspot": min(timed(ours_cmd) for _ in range(args.repeat))}
        report = orjson.loads(ours_out.read_bytes())
        stats = {"blindspot": [report[k] for k in KEYS]}
        for name, script in (("pycocotools", _PYCOCO), ("faster-coco-eval", _FASTER), ("hotcoco", _HOTCOCO)):
            if name in args.skip:
                continue
            out = Path(tmp, f"{name}.json")
            cmd = [sys.executable, "-c", script, str(gt_path), str(det_path), str(out)]
            runs[name] = min(timed(cmd) for _ in range(args.repeat))
            stats[name] = json.loads(out.read_text())

    ours = runs["blindspot"]
    print(f"\nblindspot first run (numba cache cold or warm): {first:.2f}s")
    print(f"{'tool':<18}{'seconds':>9}{'x ours':>9}   numbers vs blindspot")
    for name, sec in runs.items():
        diff = float(np.max(np.abs(np.array(stats[name]) - np.array(stats["blindspot"]))))
        same = "identical" if diff == 0 else f"max |diff| {diff:.2e}"
        note = "(per-image + per-object included)" if name == "blindspot" else same
        print(f"{name:<18}{sec:>9.2f}{sec / ours:>9.2f}   {note}")
    fastest = min((s, n) for n, s in runs.items() if n != "blindspot") if len(runs) > 1 else None
    if fastest:
        print(f"\nfastest reference: {fastest[1]} {fastest[0]:.2f}s -> blindspot is {fastest[0] / ours:.2f}x its speed")
    for k, v in zip(KEYS, stats["blindspot"], strict=True):
        print(f"  {k:<10} {v:.6f}")


if __name__ == "__main__":
    main()
