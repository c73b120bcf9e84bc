"""Labelbox-compatible per-row metrics (labelbox-python ``labelbox.data.metrics``, boxes only).

Semantics reproduced (``iou/calculation.py`` and ``confusion_matrix/calculation.py``, no subclasses):

- Objects are grouped by class ("feature"). A class with GT but no predictions, or predictions but no
  GT, has IoU 0.0 and confusion ``[tp 0, fp P, fn G]``; a class with neither is absent.
- Confusion counts: every (GT, prediction) pair of the class is listed GT-major (``product(gts,
  preds)``), stably sorted by IoU descending, and taken greedily when ``iou > threshold`` (strict) and
  neither side is taken yet. TP = taken pairs, FP = untaken predictions, FN = untaken GT.
- IoU ("miou"): pairs listed prediction-major, sorted the same way, taken greedily whatever their IoU;
  the class IoU is the mean over taken pairs' IoU plus a 0 for every object left over, i.e.
  ``sum(taken IoU) / max(G, P)``. The row IoU is the mean of its classes' IoU (classes weigh equally).
- A row with no GT and no predictions has no Labelbox metrics (``None``).

Box IoU is the plain rectangle IoU (labelbox intersects shapely rectangles; no crowd rule).
Objects inside a group must be given in the order labelbox would receive them (ascending object id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["LabelboxCounts", "group_metrics", "rect_iou"]


@numba.njit(cache=True, nogil=True)
def rect_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``[x, y, w, h]`` rectangles (0 when they do not overlap)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    if union <= 0.0:
        return 0.0
    return inter / union


@numba.njit(cache=True, nogil=True)
def _greedy(
    ious: np.ndarray, n_outer: int, n_inner: int, threshold: float, strict: bool
) -> tuple[int, float]:
    """Greedy one-to-one selection over pairs listed outer-major; returns (taken, sum of taken IoU)."""
    order = np.argsort(-ious, kind="mergesort")
    used_o = np.zeros(n_outer, dtype=np.bool_)
    used_i = np.zeros(n_inner, dtype=np.bool_)
    taken = 0
    total = 0.0
    for q in range(order.shape[0]):
        p = order[q]
        o = p // n_inner
        i = p % n_inner
        if used_o[o] or used_i[i]:
            continue
        if strict and not ious[p] > threshold:
            continue
        used_o[o] = True
        used_i[i] = True
        taken += 1
        total += ious[p]
    return taken, total


@numba.njit(cache=True, nogil=True)
def _group_metrics(
    gt_box: np.ndarray,
    pred_box: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = gt_start.shape[0]
    tp = np.zeros(n, dtype=np.int64)
    fp = np.zeros(n, dtype=np.int64)
    fn = np.zeros(n, dtype=np.int64)
    miou = np.full(n, np.nan)
    for g in range(n):
        g0 = gt_start[g]
        ng = gt_end[g] - g0
        p0 = pred_start[g]
        np_ = pred_end[g] - p0
        if ng == 0 and np_ == 0:
            continue
        if ng == 0 or np_ == 0:
            fp[g] = np_
            fn[g] = ng
            miou[g] = 0.0
            continue
        gt_major = np.empty(ng * np_)
        pred_major = np.empty(ng * np_)
        for j in range(ng):
            for i in range(np_):
                v = rect_iou(gt_box[g0 + j], pred_box[p0 + i])
                gt_major[j * np_ + i] = v
                pred_major[i * ng + j] = v
        taken, _ = _greedy(gt_major, ng, np_, threshold, True)
        tp[g] = taken
        fp[g] = np_ - taken
        fn[g] = ng - taken
        _, total = _greedy(pred_major, np_, ng, 0.0, False)
        miou[g] = total / max(ng, np_)
    return tp, fp, fn, miou


@dataclass(frozen=True)
class LabelboxCounts:
    """Per group (one class of one row): ``(K,)`` arrays. ``miou`` is NaN where the group is empty."""

    tp: NDArray[np.int64]
    fp: NDArray[np.int64]
    fn: NDArray[np.int64]
    miou: NDArray[np.float64]


def group_metrics(
    gt_box: NDArray[np.float64],
    pred_box: NDArray[np.float64],
    gt_start: NDArray[np.int64],
    gt_end: NDArray[np.int64],
    pred_start: NDArray[np.int64],
    pred_end: NDArray[np.int64],
    iou_threshold: float,
) -> LabelboxCounts:
    """Labelbox confusion counts and IoU of K groups.

    gt_box ``(G, 4)``, pred_box ``(P, 4)`` ``[x, y, w, h]``, each group's objects contiguous and in
    ascending object id; group k owns ``gt_start[k]:gt_end[k]`` and ``pred_start[k]:pred_end[k]``.
    """
    tp, fp, fn, miou = _group_metrics(
        np.ascontiguousarray(gt_box, dtype=np.float64).reshape(-1, 4),
        np.ascontiguousarray(pred_box, dtype=np.float64).reshape(-1, 4),
        np.asarray(gt_start, dtype=np.int64),
        np.asarray(gt_end, dtype=np.int64),
        np.asarray(pred_start, dtype=np.int64),
        np.asarray(pred_end, dtype=np.int64),
        float(iou_threshold),
    )
    return LabelboxCounts(tp, fp, fn, miou)
