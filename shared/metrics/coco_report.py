"""The JSON report of a COCO evaluation (what ``blindspot eval coco`` writes); pure, no I/O.

``coco_report(result, per_image=False) -> dict``; ``coco_report_json(...) -> bytes``, the same value as
JSON text (what the CLI writes; faster).

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

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from shared.metrics.coco_native import kernels
from shared.metrics.coco_params import STAT_KEYS
from shared.metrics.coco_result import CocoResult

__all__ = ["coco_report", "coco_report_json"]


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


@dataclass(frozen=True)
class _PerImage:
    """Columns of ``per_image``. I images, P (image, category) entries, Q matches (see the kernel)."""

    image_ids: NDArray[np.int64]  # (I,)
    totals: NDArray[np.int64]  # (I, 4) tp, fp, fn, ignored
    bounds: NDArray[np.int64]  # (I + 1,) entries of image i: bounds[i]:bounds[i + 1]
    cls_cat: NDArray[np.int64]  # (P,)
    cls_counts: NDArray[np.int64]  # (P, 3) tp, fp, fn
    mbounds: NDArray[np.int64]  # (I + 1,)
    m_cols: NDArray[np.int64]  # (Q, 3) det, gt id, category id
    m_iou: NDArray[np.float64]  # (Q,)


def _per_image_columns(result: CocoResult) -> _PerImage:
    counts = result.image_counts(0)
    m = result.matches
    flat = result.flat
    n_img = len(result.image_ids)
    img_idx = np.searchsorted(result.image_ids, counts.image_id)
    by_img = np.lexsort((counts.category_id, img_idx))
    bounds = np.searchsorted(img_idx[by_img], np.arange(n_img + 1)).astype(np.int64)
    totals = np.stack(
        [
            np.bincount(img_idx, weights=w, minlength=n_img).astype(np.int64)
            for w in (counts.tp, counts.fp, counts.fn, counts.ignored)
        ],
        axis=1,
    )
    cls_counts = np.stack([counts.tp[by_img], counts.fp[by_img], counts.fn[by_img]], axis=1)
    # True positives at IoU 0.5, grouped by image.
    det_idx = np.flatnonzero((m.det_matched_gt[0] >= 0) & ~m.det_ignored[0])  # det_tp[0]
    det_img = np.empty(flat.n_det_input, dtype=np.int64)
    det_cat = np.empty(flat.n_det_input, dtype=np.int64)
    det_img[flat.det_input] = flat.det_img
    det_cat[flat.det_input] = flat.category_ids[flat.det_cat]
    gt_id = np.empty(flat.n_gt_input, dtype=np.int64)
    gt_id[flat.gt_input] = flat.gt_id
    match_img = det_img[det_idx]
    by_match = np.argsort(match_img, kind="stable")
    det_idx = det_idx[by_match]
    mbounds = np.searchsorted(match_img[by_match], np.arange(n_img + 1)).astype(np.int64)
    m_cols = np.stack([det_idx, gt_id[m.det_matched_gt[0, det_idx]], det_cat[det_idx]], axis=1)
    return _PerImage(
        image_ids=np.ascontiguousarray(result.image_ids, dtype=np.int64),
        totals=np.ascontiguousarray(totals, dtype=np.int64),
        bounds=bounds,
        cls_cat=np.ascontiguousarray(counts.category_id[by_img], dtype=np.int64),
        cls_counts=np.ascontiguousarray(cls_counts, dtype=np.int64),
        mbounds=mbounds,
        m_cols=np.ascontiguousarray(m_cols, dtype=np.int64),
        m_iou=np.ascontiguousarray(m.det_match_iou[0, det_idx]),
    )


def _per_image(result: CocoResult) -> dict[str, Any]:
    c = _per_image_columns(result)
    bounds, mbounds = c.bounds.tolist(), c.mbounds.tolist()
    cats = list(map(str, c.cls_cat.tolist()))
    entries = [{"tp": a, "fp": b, "fn": f} for a, b, f in c.cls_counts.tolist()]
    matches = [
        {"det": d, "gt": g, "category_id": k, "iou": v}
        for (d, g, k), v in zip(c.m_cols.tolist(), c.m_iou.tolist(), strict=True)
    ]
    return {
        str(img): {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "ignored": ig,
            "per_class": dict(
                zip(cats[bounds[i] : bounds[i + 1]], entries[bounds[i] : bounds[i + 1]], strict=True)
            ),
            "matches": matches[mbounds[i] : mbounds[i + 1]],
        }
        for i, (img, (tp, fp, fn, ig)) in enumerate(zip(c.image_ids.tolist(), c.totals.tolist(), strict=True))
    }


def coco_report_json(result: CocoResult, *, per_image: bool = False) -> bytes:
    """``orjson.dumps(coco_report(result, per_image=per_image))``, the same JSON value, written faster.

    ``per_image`` is written as text by a kernel (``coco_report_kernels.per_image_json``) instead of
    ~10 Python objects per image and category.
    """
    head = orjson.dumps(coco_report(result, per_image=False))
    if not per_image:
        return head
    c = _per_image_columns(result)
    iou_text = np.frombuffer(orjson.dumps(c.m_iou.tolist()), dtype=np.uint8)
    body = kernels().per_image_json(
        c.image_ids, c.totals, c.bounds, c.cls_cat, c.cls_counts, c.mbounds, c.m_cols, iou_text
    )
    return b"".join((head[:-1], b',"per_image":', body.tobytes(), b"}"))
