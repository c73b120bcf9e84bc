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
    images: dict[str, dict[str, Any]] = {
        str(i): {"tp": 0, "fp": 0, "fn": 0, "ignored": 0, "per_class": {}, "matches": []}
        for i in result.image_ids.tolist()
    }
    for img, cat, tp, fp, fn, ig in zip(
        counts.image_id.tolist(),
        counts.category_id.tolist(),
        counts.tp.tolist(),
        counts.fp.tolist(),
        counts.fn.tolist(),
        counts.ignored.tolist(),
        strict=True,
    ):
        entry = images[str(img)]
        entry["tp"] += tp
        entry["fp"] += fp
        entry["fn"] += fn
        entry["ignored"] += ig
        entry["per_class"][str(cat)] = {"tp": tp, "fp": fp, "fn": fn}
    flat = result.flat
    det_idx = np.flatnonzero(m.det_tp[0])
    if len(det_idx):
        gt_idx = m.det_matched_gt[0, det_idx]
        # Input-order det -> its image/category: invert the flat permutation.
        det_img = np.empty(flat.n_det_input, dtype=np.int64)
        det_cat = np.empty(flat.n_det_input, dtype=np.int64)
        det_img[flat.det_input] = flat.image_ids[flat.det_img]
        det_cat[flat.det_input] = flat.category_ids[flat.det_cat]
        gt_id = np.empty(flat.n_gt_input, dtype=np.int64)
        gt_id[flat.gt_input] = flat.gt_id
        for d, img, cat, g, iou in zip(
            det_idx.tolist(),
            det_img[det_idx].tolist(),
            det_cat[det_idx].tolist(),
            gt_id[gt_idx].tolist(),
            m.det_match_iou[0, det_idx].tolist(),
            strict=True,
        ):
            images[str(img)]["matches"].append({"det": d, "gt": g, "category_id": cat, "iou": iou})
    return images
