"""TIDE error types and dAP (Bolya et al. 2020; the ``tidecv`` package's definitions), boxes only.

Error types of a false positive, tested in this order (``tidecv.quantify.TIDERun._eval_image``), with
``t_f`` the foreground IoU (0.5) and ``t_b`` the background IoU (0.1), IoU against the row's
non-crowd GT:

1. ``bkg``: the row has no GT at all.
2. ``loc``: the best same-class IoU is in ``[t_b, t_f]`` (target: that GT).
3. ``cls``: the best other-class IoU is ``>= t_f`` (target: that GT).
4. ``dupe``: the best IoU with an already matched same-class GT is ``>= t_f``.
5. ``bkg``: the best IoU with any GT is ``<= t_b``.
6. ``both``: anything else (overlaps a GT of another class, badly).

A missed GT is ``miss`` unless a ``cls``/``loc`` error targets it (it is then "usable": fixing the
highest-scoring such error would find it). dAP of an error type = AP after fixing every error of that
type alone minus the original AP: fixed ``cls``/``loc`` errors become TPs (of the GT's class for
``cls``) when they are the best fix of their GT and disappear otherwise; ``dupe``/``bkg``/``both``
disappear; fixed ``miss`` GT leave the GT count. AP is TIDE's own 101-point AP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from shared.metrics.labelbox import rect_iou

__all__ = [
    "ERROR_CODES",
    "ERROR_NAMES",
    "RowErrors",
    "TideDelta",
    "classify_rows",
    "tide_ap",
    "tide_delta_ap",
]

# Codes stored in the kernels' int8 outputs; index 0 = no error.
ERROR_NAMES: tuple[str | None, ...] = (None, "cls", "loc", "both", "dupe", "bkg", "miss")
ERROR_CODES: dict[str, int] = {n: i for i, n in enumerate(ERROR_NAMES) if n is not None}
MAIN_ERRORS: tuple[str, ...] = ("cls", "loc", "both", "dupe", "bkg", "miss")
_CLS, _LOC, _BOTH, _DUPE, _BKG, _MISS = 1, 2, 3, 4, 5, 6


@numba.njit(cache=True, nogil=True)
def _classify(
    row_pred_start: np.ndarray,
    row_pred_end: np.ndarray,
    row_gt_start: np.ndarray,
    row_gt_end: np.ndarray,
    pred_box: np.ndarray,
    pred_cls: np.ndarray,
    pred_include: np.ndarray,
    pred_tp: np.ndarray,
    gt_box: np.ndarray,
    gt_cls: np.ndarray,
    gt_crowd: np.ndarray,
    gt_used: np.ndarray,
    t_f: float,
    t_b: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_pred = pred_box.shape[0]
    n_gt = gt_box.shape[0]
    p_err = np.zeros(n_pred, dtype=np.int8)
    p_target = np.full(n_pred, -1, dtype=np.int64)
    p_fix = np.zeros(n_pred, dtype=np.bool_)
    p_best = np.zeros(n_pred)
    p_partner = np.full(n_pred, -1, dtype=np.int64)
    g_err = np.zeros(n_gt, dtype=np.int8)
    g_best = np.zeros(n_gt)
    g_partner = np.full(n_gt, -1, dtype=np.int64)
    for r in range(row_pred_start.shape[0]):
        p0, p1 = row_pred_start[r], row_pred_end[r]
        g0, g1 = row_gt_start[r], row_gt_end[r]
        n_real = 0
        for j in range(g0, g1):
            if not gt_crowd[j]:
                n_real += 1
        best_fixer = np.full(g1 - g0, -1, dtype=np.int64)
        for i in range(p0, p1):
            # IoU with every non-crowd GT of the row (argmax = first maximum, as numpy).
            same_v, same_j = -1.0, -1
            other_v, other_j = -1.0, -1
            used_v = -1.0
            any_v = -1.0
            for j in range(g0, g1):
                if gt_crowd[j]:
                    continue
                v = rect_iou(pred_box[i], gt_box[j])
                if pred_include[i] and v > g_best[j]:
                    g_best[j] = v
                if v > any_v:
                    any_v = v
                if gt_cls[j] == pred_cls[i]:
                    if v > same_v:
                        same_v, same_j = v, j
                    if gt_used[j] and v > used_v:
                        used_v = v
                elif v > other_v:
                    other_v, other_j = v, j
            if any_v > 0.0:
                p_best[i] = any_v
            if pred_tp[i] or not pred_include[i]:
                continue
            if n_real == 0:
                p_err[i] = _BKG
                continue
            # A class with no GT in the row contributes IoU 0 (tidecv masks by class, max stays 0).
            sv = max(same_v, 0.0)
            ov = max(other_v, 0.0)
            uv = max(used_v, 0.0)
            av = max(any_v, 0.0)
            if t_b <= sv <= t_f and same_j >= 0:
                p_err[i] = _LOC
                p_target[i] = same_j
            elif ov >= t_f:
                p_err[i] = _CLS
                p_target[i] = other_j
            elif uv >= t_f:
                p_err[i] = _DUPE
            elif av <= t_b:
                p_err[i] = _BKG
            else:
                p_err[i] = _BOTH
            t = p_target[i]
            if t >= 0 and not gt_used[t]:
                # BestGTMatch: the highest-scoring error pointing at an unused GT is its fix.
                if best_fixer[t - g0] < 0:
                    best_fixer[t - g0] = i
                    p_fix[i] = True
                if p_err[i] == _CLS and g_partner[t] < 0:
                    g_partner[t] = i
                    p_partner[i] = t
        for j in range(g0, g1):
            if gt_crowd[j] or gt_used[j]:
                continue
            f = best_fixer[j - g0]
            g_err[j] = _MISS if f < 0 else p_err[f]
    return p_err, p_target, p_fix, p_best, p_partner, g_err, g_best, g_partner


@dataclass(frozen=True)
class RowErrors:
    """TIDE classification of the objects of many rows. P predictions, G ground truth.

    pred_error ``(P,)`` int8 code (``ERROR_NAMES``; 0 for TPs and excluded predictions);
    pred_target ``(P,)`` the GT a ``cls``/``loc`` error points at, or -1; pred_fix ``(P,)`` True for the
    error TIDE fixes for that GT; pred_best_iou ``(P,)`` best IoU with any non-crowd GT of the row;
    pred_partner ``(P,)`` for a ``cls`` error, the missed GT it pairs with in the confusion matrix.
    gt_error ``(G,)`` ``miss`` for a missed GT no error targets, else the type of its best fix (0 for
    matched or crowd GT); gt_best_iou ``(G,)`` best IoU with an included prediction; gt_partner ``(G,)``.
    """

    pred_error: NDArray[np.int8]
    pred_target: NDArray[np.int64]
    pred_fix: NDArray[np.bool_]
    pred_best_iou: NDArray[np.float64]
    pred_partner: NDArray[np.int64]
    gt_error: NDArray[np.int8]
    gt_best_iou: NDArray[np.float64]
    gt_partner: NDArray[np.int64]


def classify_rows(
    row_pred_start: NDArray[np.int64],
    row_pred_end: NDArray[np.int64],
    row_gt_start: NDArray[np.int64],
    row_gt_end: NDArray[np.int64],
    pred_box: NDArray[np.float64],
    pred_cls: NDArray[np.int64],
    pred_include: NDArray[np.bool_],
    pred_tp: NDArray[np.bool_],
    gt_box: NDArray[np.float64],
    gt_cls: NDArray[np.int64],
    gt_crowd: NDArray[np.bool_],
    gt_used: NDArray[np.bool_],
    t_f: float = 0.5,
    t_b: float = 0.1,
) -> RowErrors:
    """Classify the errors of R rows.

    Row r owns predictions ``row_pred_start[r]:row_pred_end[r]`` (in descending score order, stable)
    and GT ``row_gt_start[r]:row_gt_end[r]`` (ascending id). ``pred_include`` selects the predictions
    taking part (confidence cut, max detections); ``pred_tp`` marks included TPs (matched at ``t_f``);
    ``gt_used`` marks GT matched by an included prediction.
    """
    out = _classify(
        np.asarray(row_pred_start, dtype=np.int64),
        np.asarray(row_pred_end, dtype=np.int64),
        np.asarray(row_gt_start, dtype=np.int64),
        np.asarray(row_gt_end, dtype=np.int64),
        np.ascontiguousarray(pred_box, dtype=np.float64).reshape(-1, 4),
        np.asarray(pred_cls, dtype=np.int64),
        np.asarray(pred_include, dtype=np.bool_),
        np.asarray(pred_tp, dtype=np.bool_),
        np.ascontiguousarray(gt_box, dtype=np.float64).reshape(-1, 4),
        np.asarray(gt_cls, dtype=np.int64),
        np.asarray(gt_crowd, dtype=np.bool_),
        np.asarray(gt_used, dtype=np.bool_),
        float(t_f),
        float(t_b),
    )
    return RowErrors(*out)


_X_RANGE = np.array([x / 100 for x in range(101)])


def tide_ap(is_true_sorted: NDArray[np.bool_], num_gt: int) -> float:
    """TIDE's AP (in [0, 1]) of one class from its points in descending score order."""
    if num_gt <= 0:
        return 0.0
    n = len(is_true_sorted)
    if n == 0:
        return 0.0
    tp = np.cumsum(is_true_sorted, dtype=np.float64)
    count = np.arange(1, n + 1, dtype=np.float64)
    precision = tp / count
    recall = tp / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, _X_RANGE, side="left")
    y = np.where(idx < n, precision[np.minimum(idx, n - 1)], 0.0)
    return float(y.sum() / len(_X_RANGE))


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _class_points(
    point_class: NDArray[np.int64],
    keep: NDArray[np.bool_],
    true: NDArray[np.bool_],
    num_gt: NDArray[np.int64],
    x_range: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``tide_ap``'s interpolated precision points of every class in one pass, and each class's count.

    point_class ``(P,)``: a class index (-1: none of the classes), in descending score order; ``keep``
    the points that take part. Returns ``(C, len(x_range))`` points (zeros where the class has no GT
    or no point) whose row mean is the class's AP, exactly as ``tide_ap`` computes it.
    """
    n_cls = len(num_gt)
    counts = np.zeros(n_cls, dtype=np.int64)
    for i in range(len(point_class)):
        if keep[i] and point_class[i] >= 0:
            counts[point_class[i]] += 1
    start = np.zeros(n_cls + 1, dtype=np.int64)
    for c in range(n_cls):
        start[c + 1] = start[c] + counts[c]
    fill = start[:n_cls].copy()
    flags = np.zeros(start[n_cls], dtype=np.bool_)
    for i in range(len(point_class)):
        c = point_class[i]
        if keep[i] and c >= 0:
            flags[fill[c]] = true[i]
            fill[c] += 1
    points = np.zeros((n_cls, len(x_range)), dtype=np.float64)
    for c in range(n_cls):
        m, g = counts[c], num_gt[c]
        if g <= 0 or m == 0:
            continue
        precision = np.empty(m, dtype=np.float64)
        recall = np.empty(m, dtype=np.float64)
        tp = 0.0
        for i in range(m):
            if flags[start[c] + i]:
                tp += 1.0
            precision[i] = tp / (i + 1.0)
            recall[i] = tp / g
        for i in range(m - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        j = 0
        for k in range(len(x_range)):
            while j < m and recall[j] < x_range[k]:  # searchsorted(recall, x, "left"), x ascending
                j += 1
            points[c, k] = precision[j] if j < m else 0.0
    return points, counts


@dataclass(frozen=True)
class TideDelta:
    """dAP of each main error type: per class (``class_id -> {type: dAP}``) and for the run (mAP).

    ``ap`` per class and ``map`` are TIDE's original AP / mAP. Run-level dAP is clamped at 0 like
    ``tidecv``; per-class values are the plain differences.
    """

    ap: dict[int, float]
    map: float | None
    per_class: dict[int, dict[str, float]]
    run: dict[str, float]


def tide_delta_ap(
    pred_cls: NDArray[np.int64],
    pred_score: NDArray[np.float64],
    pred_tp: NDArray[np.bool_],
    pred_error: NDArray[np.int8],
    pred_fix_class: NDArray[np.int64],
    gt_cls: NDArray[np.int64],
    gt_miss: NDArray[np.bool_],
    *,
    presorted: bool = False,
) -> TideDelta:
    """TIDE dAP from classified objects (predictions that take part; non-crowd GT).

    pred_* ``(P,)``: class, score, TP at t_f, error code, and the class a fixed cls/loc error becomes a
    TP of (-1 when fixing removes it). gt_cls ``(G,)`` non-crowd GT classes, gt_miss ``(G,)`` ``miss``.
    """
    cls = np.asarray(pred_cls, dtype=np.int64)
    # ``presorted``: already in the stable descending-score order (ties matter here: kept as given).
    order = (
        np.arange(len(cls))
        if presorted
        else np.argsort(-np.asarray(pred_score, dtype=np.float64), kind="mergesort")
    )
    cls_s = cls[order]
    tp_s = np.asarray(pred_tp, dtype=bool)[order]
    err_s = np.asarray(pred_error, dtype=np.int8)[order]
    fix_s = np.asarray(pred_fix_class, dtype=np.int64)[order]
    gcls = np.asarray(gt_cls, dtype=np.int64)
    miss = np.asarray(gt_miss, dtype=bool)
    classes = sorted(set(np.unique(cls).tolist()) | set(np.unique(gcls).tolist()))
    num_gt = {c: int(np.count_nonzero(gcls == c)) for c in classes}
    miss_gt = {c: int(np.count_nonzero((gcls == c) & miss)) for c in classes}

    class_ids = np.asarray(classes, dtype=np.int64)

    def index_of(values: NDArray[np.int64]) -> NDArray[np.int64]:
        """Position of each class id in ``classes`` (-1: not one of them)."""
        if len(class_ids) == 0:
            return np.full(len(values), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(class_ids, values), len(class_ids) - 1)
        return np.where(class_ids[pos] == values, pos, -1)

    cls_index, fix_index = index_of(cls_s), index_of(fix_s)

    def class_aps(
        point_index: NDArray[np.int64], keep: NDArray[np.bool_], true: NDArray[np.bool_], gts: dict[int, int]
    ) -> dict[int, float | None]:
        """``tide_ap`` of each class's kept points (one compiled pass; same numbers, tested)."""
        counts_gt = np.asarray([gts[c] for c in classes], dtype=np.int64)
        points, counts = _class_points(point_index, keep, true, counts_gt, _X_RANGE)
        out: dict[int, float | None] = {}
        for k, c in enumerate(classes):
            if counts[k] == 0 and gts[c] == 0:
                out[c] = None  # empty class: not part of the mAP
                continue
            out[c] = float(points[k].sum() / len(_X_RANGE))
        return out

    def mean(aps: dict[int, float | None]) -> float | None:
        vals = [v for v in aps.values() if v is not None]
        return sum(vals) / len(vals) if vals else None

    keep_all = np.ones(len(cls_s), dtype=bool)
    base = class_aps(cls_index, keep_all, tp_s, num_gt)
    base_map = mean(base)
    per_class: dict[int, dict[str, float]] = {c: {} for c in classes}
    run: dict[str, float] = {}
    for name in MAIN_ERRORS:
        code = ERROR_CODES[name]
        gts = dict(num_gt)
        point_index, keep, true = cls_index, keep_all, tp_s
        if name == "miss":
            gts = {c: num_gt[c] - miss_gt[c] for c in classes}
        else:
            hit = err_s == code
            fixed = hit & (fix_s >= 0)
            point_index = np.where(fixed, fix_index, cls_index)
            keep = ~hit | fixed
            true = tp_s | fixed
        aps = class_aps(point_index, keep, true, gts)
        for c in classes:
            b, a = base[c], aps[c]
            per_class[c][name] = (a or 0.0) - (b or 0.0)
        fixed_map = mean(aps)
        run[name] = max((fixed_map or 0.0) - (base_map or 0.0), 0.0)
    return TideDelta({c: v for c, v in base.items() if v is not None}, base_map, per_class, run)
