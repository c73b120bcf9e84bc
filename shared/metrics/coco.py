"""COCO box evaluation with exact pycocotools semantics (definitions: docs/metrics.md, "COCO (AP / AR)").

Public API (stable; the per-row metrics, TIDE and the metrics workers build on it):

- ``COCO_IOU_THRESHOLDS`` ``(10,)`` = 0.50:0.05:0.95; ``COCO_REC_THRESHOLDS`` ``(101,)`` = 0:0.01:1;
  ``AREA_RANGES`` {"all", "small", "medium", "large"} -> (lo, hi), inclusive at both ends;
  ``COCO_MAX_DETS`` = (1, 10, 100).
- ``match_image_class(det_boxes (D,4), det_scores (D,), gt_boxes (G,4), gt_crowd (G,), gt_area (G,),
  iou_thresholds, area_range, max_dets) -> ImageClassMatch``: ``COCOeval.evaluateImg`` for one
  (image, category, area range).
- ``accumulate_class(scores (N,), tp (T,N), fp (T,N), num_gt, rec_thresholds) -> ClassCurve``:
  ``COCOeval.accumulate`` for one (category, area range, max-dets). Sorting by score is stable, so
  on score ties the input order decides, as in pycocotools: pass detections concatenated in
  ascending image id order, each image's in its ``det_order``, to reproduce pycocotools exactly.
- ``evaluate_coco(gt: dict, dets: list[dict] | ResultColumns, max_dets=(1, 10, 100)) -> CocoResult``:
  the whole dataset (``COCOeval`` ``evaluate() + accumulate() + summarize()``): ``stats`` (12 numbers
  keyed by ``STAT_KEYS``), ``per_class``, the ``precision``/``recall``/``scores`` arrays, per-object
  matches (``CocoResult.matches``) and per-image TP/FP/FN (``CocoResult.image_counts``).
- ``parse_results(bytes) -> ResultColumns | None``: a result JSON file straight to columns (fast path).

Library results use ``None`` (scalars) or NaN (arrays) where pycocotools writes -1 (undefined:
no non-ignored ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.metrics.coco_input import CocoFormatError, FlatCoco, flatten_coco
from shared.metrics.coco_json import ResultColumns, parse_results
from shared.metrics.coco_params import (
    AREA_NAMES,
    AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETS,
    COCO_REC_THRESHOLDS,
    STAT_KEYS,
)
from shared.metrics.coco_result import ClassStats, CocoMatches, CocoResult, ImageClassCounts, evaluate_flat

__all__ = [
    "AREA_NAMES",
    "AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_MAX_DETS",
    "COCO_REC_THRESHOLDS",
    "STAT_KEYS",
    "ClassCurve",
    "ClassStats",
    "CocoFormatError",
    "CocoMatches",
    "CocoResult",
    "ImageClassCounts",
    "ImageClassMatch",
    "ResultColumns",
    "accumulate_class",
    "evaluate_coco",
    "match_image_class",
    "parse_results",
]


I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]


def _f64(a: Any, shape_tail: tuple[int, ...], name: str) -> F64:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape((0, *shape_tail))
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class ImageClassMatch:
    """Matching of one (image, category, area range). T thresholds, D detections, G ground truth.

    det_matched_gt ``(T, D)`` int64: index into the GT arrays given, or -1 (unmatched, or not kept).
    det_ignored ``(T, D)`` bool: matched to an ignored GT, or unmatched with its area outside the
        range, or not kept (past ``max_dets``); neither TP nor FP.
    gt_matched_det ``(T, G)`` int64: index into the detection arrays given, or -1.
    gt_ignored ``(G,)`` bool: crowd or area outside the range; never a FN.
    det_order ``(K,)`` int64: the kept detections (K = min(D, max_dets)) in matching order
        (descending score, stable).
    ious ``(D, G)`` float64: IoU in input order (0 for detections that are not kept).
    Indices refer to input order throughout.
    """

    det_matched_gt: I64
    det_ignored: B
    gt_matched_det: I64
    gt_ignored: B
    det_order: I64
    ious: F64

    @property
    def tp(self) -> B:
        """``(T, D)`` matched to a non-ignored GT."""
        return (self.det_matched_gt >= 0) & ~self.det_ignored

    @property
    def fp(self) -> B:
        """``(T, D)`` unmatched and not ignored."""
        return (self.det_matched_gt < 0) & ~self.det_ignored

    @property
    def fn(self) -> B:
        """``(T, G)`` non-ignored GT left unmatched."""
        return (self.gt_matched_det < 0) & ~self.gt_ignored[None, :]


def match_image_class(
    det_boxes: NDArray[np.floating],
    det_scores: NDArray[np.floating],
    gt_boxes: NDArray[np.floating],
    gt_crowd: NDArray[np.bool_],
    gt_area: NDArray[np.floating],
    iou_thresholds: NDArray[np.floating] = COCO_IOU_THRESHOLDS,
    area_range: tuple[float, float] = AREA_RANGES["all"],
    max_dets: int = 100,
) -> ImageClassMatch:
    """``COCOeval.evaluateImg`` for one image and category (boxes ``[x, y, w, h]``).

    det_boxes ``(D, 4)``, det_scores ``(D,)``, gt_boxes ``(G, 4)``, gt_crowd ``(G,)`` bool,
    gt_area ``(G,)`` (the annotation area, used for the range test; a detection's area is w * h).
    """
    from shared.metrics import coco_kernels as K  # numba: imported when used (see coco_native)

    db = _f64(det_boxes, (4,), "det_boxes")
    ds = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    gb = _f64(gt_boxes, (4,), "gt_boxes")
    gc = np.asarray(gt_crowd, dtype=bool).reshape(-1)
    ga = np.asarray(gt_area, dtype=np.float64).reshape(-1)
    thr = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if len(ds) != len(db) or len(gc) != len(gb) or len(ga) != len(gb):
        raise ValueError("det_scores must match det_boxes; gt_crowd and gt_area must match gt_boxes")
    n_det, n_gt, n_thr = len(db), len(gb), len(thr)
    order = np.argsort(-ds, kind="mergesort")[: max(max_dets, 0)].astype(np.int64)
    sorted_boxes = np.ascontiguousarray(db[order])
    kept = len(order)
    ious_sorted = K.box_iou_block(sorted_boxes, 0, kept, np.ascontiguousarray(gb), gc, 0, n_gt)
    dm = np.full((n_thr, kept), -1, dtype=np.int64)
    di = np.zeros((n_thr, kept), dtype=bool)
    gm = np.full((n_thr, n_gt), -1, dtype=np.int64)
    gi = np.zeros(n_gt, dtype=bool)
    lo, hi = float(area_range[0]), float(area_range[1])
    d_area = sorted_boxes[:, 2] * sorted_boxes[:, 3]
    if n_gt:
        K.match_block(ious_sorted, kept, gc, ga, d_area, thr, lo, hi, dm, di, gm, gi)
    else:
        di[:] = ((d_area < lo) | (d_area > hi))[None, :]
    det_matched_gt = np.full((n_thr, n_det), -1, dtype=np.int64)
    det_ignored = np.ones((n_thr, n_det), dtype=bool)
    det_matched_gt[:, order] = dm
    det_ignored[:, order] = di
    gt_matched_det = np.full((n_thr, n_gt), -1, dtype=np.int64)
    hit = gm >= 0
    gt_matched_det[hit] = order[gm[hit]]
    ious = np.zeros((n_det, n_gt))
    ious[order] = ious_sorted
    return ImageClassMatch(det_matched_gt, det_ignored, gt_matched_det, gi, order, ious)


@dataclass(frozen=True)
class ClassCurve:
    """COCOeval.accumulate for one category / area range / max-dets. T thresholds, R recall points.

    ``None`` everywhere when the category has no non-ignored GT (pycocotools leaves -1 there).
    precision ``(T, R)`` interpolated precision at each recall threshold; recall ``(T,)`` final recall;
    scores_at_recall ``(T, R)`` the score of the detection where each recall point is reached (0 past
    the end); ap ``(T,)`` mean of precision over R; order ``(N,)`` the score sort used.
    """

    precision: F64 | None
    recall: F64 | None
    scores_at_recall: F64 | None
    ap: F64 | None
    order: I64


def accumulate_class(
    scores: NDArray[np.floating],
    tp: NDArray[np.bool_],
    fp: NDArray[np.bool_],
    num_gt: int,
    rec_thresholds: NDArray[np.floating] = COCO_REC_THRESHOLDS,
) -> ClassCurve:
    """Precision/recall of one category from concatenated detections.

    scores ``(N,)``; tp, fp ``(T, N)`` (an ignored detection has both False but still counts for
    its position); num_gt = non-ignored GT count. Sorted here by descending score (stable).
    """
    from shared.metrics import coco_accumulate as KA  # numba: imported when used (see coco_native)

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp_a = np.asarray(tp, dtype=bool).reshape(-1, len(s)) if len(s) else np.asarray(tp, dtype=bool)
    fp_a = np.asarray(fp, dtype=bool).reshape(tp_a.shape)
    rec = np.asarray(rec_thresholds, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort").astype(np.int64)
    if num_gt <= 0:
        return ClassCurve(None, None, None, None, order)
    n_thr = tp_a.shape[0]
    precision = np.zeros((n_thr, len(rec)))
    at = np.zeros((n_thr, len(rec)))
    recall = np.zeros(n_thr)
    s_sorted = s[order]
    for t in range(n_thr):
        q, ss, rc = KA.pr_curve(
            np.ascontiguousarray(tp_a[t, order]),
            np.ascontiguousarray(fp_a[t, order]),
            s_sorted,
            int(num_gt),
            rec,
        )
        precision[t], at[t], recall[t] = q, ss, rc
    return ClassCurve(precision, recall, at, precision.mean(axis=1), order)


def evaluate_coco(
    gt: dict[str, Any],
    dets: list[dict[str, Any]] | ResultColumns,
    *,
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
) -> CocoResult:
    """Evaluate COCO detections against COCO ground truth (bbox), pycocotools numbers exactly.

    gt: a COCO dict (``images``, ``annotations``, ``categories``); dets: the result list, or its
    columns (``shared.metrics.coco_json.parse_results``, the fast path for big files).
    Raises ``CocoFormatError`` (an ``InvalidInput``) naming what is malformed.
    """
    flat: FlatCoco = flatten_coco(gt, dets)
    return evaluate_flat(flat, max_dets=max_dets)
