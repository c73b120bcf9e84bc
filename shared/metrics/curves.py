"""Per-class curves: precision-recall, F1 versus confidence with the best threshold, confusion matrix.

Pure numpy (docs/metrics.md, "Confusion matrix" and "Per class").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CONF_GRID", "NONE_CLASS", "F1Curve", "confusion_counts", "f1_curve"]

NONE_CLASS = 0  # the "None" row/column of the confusion matrix (no GT / no prediction)
CONF_GRID: NDArray[np.float64] = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass(frozen=True)
class F1Curve:
    """F1, precision and recall when keeping predictions with ``confidence >= c``, for c in a grid.

    confidence/f1/precision/recall ``(C,)`` (NaN where undefined); best_threshold: the confidence
    (one of the predictions' own) that maximises F1, the highest such on ties; None without GT or
    predictions.
    """

    confidence: NDArray[np.float64]
    f1: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    best_threshold: float | None
    best_f1: float | None

    def as_json(self) -> dict[str, list[float | None]]:
        def clean(a: NDArray[np.float64]) -> list[float | None]:
            return [None if v != v else round(v, 6) for v in a.tolist()]

        return {
            "confidence": clean(self.confidence),
            "f1": clean(self.f1),
            "precision": clean(self.precision),
            "recall": clean(self.recall),
        }


def f1_curve(
    scores: NDArray[np.float64],
    tp: NDArray[np.bool_],
    fp: NDArray[np.bool_],
    num_gt: int,
    grid: NDArray[np.float64] = CONF_GRID,
    *,
    presorted: bool = False,
) -> F1Curve:
    """F1 versus confidence at one IoU threshold.

    scores ``(N,)``; tp/fp ``(N,)`` (an ignored prediction is neither); num_gt non-ignored GT.
    F1 = 2 TP / (2 TP + FP + FN) with FN = num_gt - TP. ``presorted``: the inputs are already in
    descending score order (the curve is read only where the score changes, so the order of ties
    does not matter).
    """
    s = np.asarray(scores, dtype=np.float64)
    order = slice(None) if presorted else np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    ctp = np.concatenate([[0.0], np.cumsum(np.asarray(tp, dtype=bool)[order], dtype=np.float64)])
    cfp = np.concatenate([[0.0], np.cumsum(np.asarray(fp, dtype=bool)[order], dtype=np.float64)])

    def at(n_keep: NDArray[np.int64]) -> tuple[NDArray[np.float64], ...]:
        t, f = ctp[n_keep], cfp[n_keep]
        fn = num_gt - t
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(t + f > 0, t / (t + f), np.nan)
            r = np.where(num_gt > 0, t / max(num_gt, 1), np.nan)
            f1 = np.where(2 * t + f + fn > 0, 2 * t / (2 * t + f + fn), np.nan)
        return f1, p, r

    # Number of predictions with score >= c: in descending order, the first index with score < c.
    keep = np.searchsorted(-s_sorted, -np.asarray(grid), side="right").astype(np.int64)
    f1, p, r = at(keep)
    best_t: float | None = None
    best_f1: float | None = None
    if len(s_sorted) and num_gt > 0:
        uniq = np.unique(s_sorted)[::-1]
        k = np.searchsorted(-s_sorted, -uniq, side="right").astype(np.int64)
        f_u, _, _ = at(k)
        i = int(np.nanargmax(f_u))
        best_t, best_f1 = float(uniq[i]), float(f_u[i])
    return F1Curve(np.asarray(grid, dtype=np.float64), f1, p, r, best_t, best_f1)


def confusion_counts(gt_cls: NDArray[np.int64], pred_cls: NDArray[np.int64]) -> dict[tuple[int, int], int]:
    """Count (gt class, predicted class) pairs; ``NONE_CLASS`` on a side means "no object there".

    The caller lists one pair per outcome at the run's thresholds: a TP (c, c); a FP paired with a
    missed GT of another class (g, p); any other FP (None, p); any other missed GT (g, None).
    """
    g = np.asarray(gt_cls, dtype=np.int64)
    p = np.asarray(pred_cls, dtype=np.int64)
    if len(g) == 0:
        return {}
    # One int64 key per pair (class ids are far below 2**31), counted by a 1-D unique.
    lo = int(min(g.min(), p.min()))
    span = int(max(g.max(), p.max())) - lo + 1
    keys, counts = np.unique((g - lo) * span + (p - lo), return_counts=True)
    return {
        (int(k // span + lo), int(k % span + lo)): int(n)
        for k, n in zip(keys.tolist(), counts.tolist(), strict=True)
    }
