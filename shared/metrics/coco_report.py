"""The JSON report of a COCO evaluation (what ``blindspot eval coco`` writes); pure, no I/O.

Shape (pycocotools conventions: -1 where a number is undefined)::

    {"mAP": .., "AP50": .., "AP75": .., "AP_small": .., "AP_medium": .., "AP_large": ..,
     "AR1": .., "AR10": .., "AR100": .., "AR_small": .., "AR_medium": .., "AR_large": ..,
     "per_class": {"<category id>": {"AP": .., "AP50": .., "AP75": .., "num_gt": ..}},
     "per_image": {"<image id>": {"tp": .., "fp": .., "fn": .., "ignored": ..,
                                  "per_class": {"<category id>": {"tp": .., "fp": .., "fn": ..}},
                                  "matches": [{"det": <index in the detections list>,
                                               "gt": <annotation id>, "category_id": ..,
                                               "iou": ..}]}}}

``per_image`` (only when asked) is at IoU 0.5, area "all", the top 100 detections per image and
category: a TP is a detection matched to a non-crowd GT, a FP an unmatched detection, a FN a
non-crowd GT left unmatched; ``ignored`` counts detections matched to a crowd GT or past the 100.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.metrics.coco_params import STAT_KEYS
from shared.metrics.coco_result import CocoResult

__all__ = ["coco_report"]


def _num(v: float | None) -> float:
    return -1.0 if v is None else float(v)


def coco_report(result: CocoResult, *, per_image: bool = False) -> dict[str, Any]:
    """Build the report dict of ``result`` (see module docstring)."""
    out: dict[str, Any] = {k: _num(result.stats[k]) for k in STAT_KEYS}
    out["per_class"] = {
        str(cid): {"AP": _num(cs.ap), "AP50": _num(cs.ap50), "AP75": _num(cs.ap75), "num_gt": cs.num_gt}
        for cid, cs in result.per_class.items()
    }
    if per_image:
        out["per_image"] = _per_image(result)
    return out


def _per_image(result: CocoResult) -> dict[str, Any]:
    counts = result.image_counts(0)
    m = result.matches
    flat = result.flat
    n_img = len(result.image_ids)
    img_idx = np.searchsorted(result.image_ids, counts.image_id)
    by_img = np.lexsort((counts.category_id, img_idx))
    bounds = np.searchsorted(img_idx[by_img], np.arange(n_img + 1)).tolist()
    totals = [
        np.bincount(img_idx, weights=w, minlength=n_img).astype(np.int64).tolist()
        for w in (counts.tp, counts.fp, counts.fn, counts.ignored)
    ]
    cats = list(map(str, counts.category_id[by_img].tolist()))
    entries = [
        {"tp": a, "fp": b, "fn": c}
        for a, b, c in zip(
            counts.tp[by_img].tolist(), counts.fp[by_img].tolist(), counts.fn[by_img].tolist(), strict=True
        )
    ]
    # True positives at IoU 0.5, grouped by image.
    det_idx = np.flatnonzero(m.det_tp[0])
    det_img = np.empty(flat.n_det_input, dtype=np.int64)
    det_cat = np.empty(flat.n_det_input, dtype=np.int64)
    det_img[flat.det_input] = flat.det_img
    det_cat[flat.det_input] = flat.category_ids[flat.det_cat]
    gt_id = np.empty(flat.n_gt_input, dtype=np.int64)
    gt_id[flat.gt_input] = flat.gt_id
    match_img = det_img[det_idx]
    by_match = np.argsort(match_img, kind="stable")
    det_idx = det_idx[by_match]
    mbounds = np.searchsorted(match_img[by_match], np.arange(n_img + 1)).tolist()
    matches = [
        {"det": d, "gt": g, "category_id": c, "iou": v}
        for d, g, c, v in zip(
            det_idx.tolist(),
            gt_id[m.det_matched_gt[0, det_idx]].tolist(),
            det_cat[det_idx].tolist(),
            m.det_match_iou[0, det_idx].tolist(),
            strict=True,
        )
    ]
    tp, fp, fn, ig = totals
    return {
        str(img): {
            "tp": tp[i],
            "fp": fp[i],
            "fn": fn[i],
            "ignored": ig[i],
            "per_class": dict(
                zip(cats[bounds[i] : bounds[i + 1]], entries[bounds[i] : bounds[i + 1]], strict=True)
            ),
            "matches": matches[mbounds[i] : mbounds[i + 1]],
        }
        for i, img in enumerate(result.image_ids.tolist())
    }
