"""Rules of the metrics service without I/O: per-class metrics of a run from its stored matches.

Every number comes from ``object_matches`` (never raw boxes): AP/AR from the threshold masks, counts
and F1 from the masks at the run's thresholds, the confusion matrix from the statuses and pairings,
TIDE dAP from the stored error types (docs/metrics.md).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from shared.metrics.coco import COCO_IOU_THRESHOLDS, COCO_REC_THRESHOLDS
from shared.metrics.coco_accumulate import accumulate_all
from shared.metrics.coco_kernels import FP as K_FP
from shared.metrics.coco_kernels import IGNORED as K_IGNORED
from shared.metrics.coco_kernels import TP as K_TP
from shared.metrics.coco_params import AREA_NAMES, AREA_RANGES, COCO_MAX_DETS
from shared.metrics.curves import NONE_CLASS, confusion_counts, f1_curve
from shared.metrics.rows import MAX_DETS_TIDE, grid_index, prf
from shared.metrics.tide import ERROR_NAMES, tide_delta_ap

SPLIT_ALL = "all"
SUMMARY_CLASS = 0
ROW_CHUNK = 1000  # rows per metrics.compute_rows task


def chunks(row_ids: list[int], size: int = ROW_CHUNK) -> list[list[int]]:
    return [row_ids[i : i + size] for i in range(0, len(row_ids), size)]


def _bits(mask: NDArray[np.int64], shift: int = 0) -> NDArray[np.bool_]:
    """``(N,)`` packed masks -> ``(10, N)`` flags of bits ``shift .. shift + 9``."""
    k = np.arange(len(COCO_IOU_THRESHOLDS), dtype=np.int64)[:, None] + shift
    return ((mask[None, :] >> k) & 1).astype(bool)


def _rank_in_group(
    keys: list[NDArray[np.int64]], conf: NDArray[np.float64], ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Rank of each prediction inside its group (keys), by descending confidence then id."""
    if len(conf) == 0:
        return np.zeros(0, dtype=np.int64)
    return _rank_in_order(np.lexsort((ids, -conf, *reversed(keys))), keys)


def _rank_in_order(order: NDArray[np.int64], keys: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    """Rank of each prediction inside its group (keys), given an ``order`` that lists each group's
    members together, in rank order."""
    n = len(order)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        ks = k[order]
        new[1:] |= ks[1:] != ks[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start
    return rank


def _top_in_row(
    rows: NDArray[np.int64], conf: NDArray[np.float64], ids: NDArray[np.int64], k: int
) -> NDArray[np.bool_]:
    """Whether each prediction is among the ``k`` best of its row (descending confidence, then id).

    Only rows with more than ``k`` predictions are ranked (none, usually: no sort at all).
    """
    keep = np.ones(len(rows), dtype=bool)
    if len(rows) == 0:
        return keep
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    crowded = np.nonzero(counts[inverse] > k)[0]
    if len(crowded):
        rank = _rank_in_group([rows[crowded]], conf[crowded], ids[crowded])
        keep[crowded] = rank < k
    return keep


def _split_codes(
    rows: NDArray[np.int64], split_of: dict[int, str], code: dict[str, int]
) -> NDArray[np.int64]:
    """Split code of each row id (-1 for rows outside the run), by binary search instead of a dict per object."""
    known = np.fromiter(split_of.keys(), dtype=np.int64, count=len(split_of))
    codes = np.fromiter((code[s] for s in split_of.values()), dtype=np.int64, count=len(split_of))
    order = np.argsort(known)
    known, codes = known[order], codes[order]
    if len(known) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(known, rows), len(known) - 1)
    return np.where(known[pos] == rows, codes[pos], -1)


def _none(v: float | None) -> float | None:
    return None if v is None or v != v else float(v)


@numba.njit(cache=True)  # type: ignore[misc]
def _status_kernel(
    tp_mask: NDArray[np.int64],
    ign_mask: NDArray[np.int64],
    area_masks: NDArray[np.int64],
    p_area: NDArray[np.float64],
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    n_thr: int,
) -> NDArray[np.int8]:
    n, n_area = len(tp_mask), len(lo)
    out = np.empty((n, n_area, n_thr), dtype=np.int8)
    for i in range(n):
        for a in range(n_area):
            if a == 0:
                tpm, igm = tp_mask[i], ign_mask[i]
            else:
                shift = 20 * (a - 1)
                tpm = (area_masks[i] >> shift) & 1023
                igm = (area_masks[i] >> (shift + 10)) & 1023
            outside = p_area[i] < lo[a] or p_area[i] > hi[a]
            for t in range(n_thr):
                if (tpm >> t) & 1:
                    out[i, a, t] = K_TP
                elif ((igm >> t) & 1) or outside:
                    out[i, a, t] = K_IGNORED
                else:
                    out[i, a, t] = K_FP
    return out


def _status(m: Any) -> NDArray[np.int8]:
    """``(N, A, T)`` COCO status codes per area range from the stored masks: TP where the bit is set;
    else ignored where the ignore bit is set or the prediction's area is outside the range; else FP."""
    lo = np.array([AREA_RANGES[a][0] for a in AREA_NAMES], dtype=np.float64)
    hi = np.array([AREA_RANGES[a][1] for a in AREA_NAMES], dtype=np.float64)
    return _status_kernel(  # type: ignore[no-any-return]
        m.p_tp_mask, m.p_ign_mask, m.p_area_masks, m.p_area, lo, hi, len(COCO_IOU_THRESHOLDS)
    )


def class_metrics(
    m: Any, split_of: dict[int, str], iou_threshold: float, conf_threshold: float
) -> tuple[list[dict[str, Any]], list[tuple[str, int, int, int]]]:
    """class_metrics rows (every split and 'all'; class 0 = run summary) and confusion cells.

    ``m`` is a ``StoredMatches`` (services.metrics.repository).
    """
    split_names = sorted(set(split_of.values()))
    code = {s: i for i, s in enumerate(split_names)}
    p_split = _split_codes(m.p_row, split_of, code)
    g_split = _split_codes(m.g_row, split_of, code)
    # pycocotools order: class, then image ascending, each image's detections by score (stable by id).
    gorder = np.lexsort((m.p_id, -m.p_conf, m.p_row, m.p_cls))
    rank_rc = _rank_in_order(gorder, [m.p_cls, m.p_row])  # rank inside (image, class): maxDets
    tp_all = _bits(m.p_tp_mask)
    ign_all = _bits(m.p_ign_mask)
    status = _status(m)
    k_run = grid_index(iou_threshold)
    include = m.p_conf >= conf_threshold
    if k_run is not None:
        run_tp = include & tp_all[k_run]
        run_fp = include & ~tp_all[k_run] & ~ign_all[k_run]
    else:
        run_tp = include & m.p_status_tp & ~m.p_ignored
        run_fp = include & ~m.p_status_tp
    k_curve = k_run if k_run is not None else 0
    curve_tp = tp_all[k_curve]
    curve_fp = ~tp_all[k_curve] & ~ign_all[k_curve]
    tide_incl = _top_in_row(m.p_row, m.p_conf, m.p_id, MAX_DETS_TIDE) & ~ign_all[0]
    tide_tp = tide_incl & tp_all[0]
    g_ok = ~m.g_crowd
    # Best score first, ties by position (the stable order every curve and TIDE's sort would make).
    conf_order = np.argsort(-m.p_conf, kind="stable")

    out: list[dict[str, Any]] = []
    cells: list[tuple[str, int, int, int]] = []
    for split in [*split_names, SPLIT_ALL]:
        ps = np.ones(len(m.p_row), bool) if split == SPLIT_ALL else p_split == code[split]
        gs = np.ones(len(m.g_row), bool) if split == SPLIT_ALL else g_split == code[split]
        idx = gorder[ps[gorder]]
        classes = np.array(sorted(set(m.p_cls[idx].tolist()) | set(m.g_cls[gs].tolist())), dtype=np.int64)
        cls_sorted = m.p_cls[idx]
        c_start = np.searchsorted(cls_sorted, classes, side="left").astype(np.int64)
        c_end = np.searchsorted(cls_sorted, classes, side="right").astype(np.int64)
        num_gt = np.zeros((len(classes), len(AREA_NAMES)), dtype=np.int64)
        g_pos = np.searchsorted(classes, m.g_cls[gs & g_ok])
        g_area = m.g_area[gs & g_ok]
        for a, name in enumerate(AREA_NAMES):
            lo, hi = AREA_RANGES[name]
            inside = (g_area >= lo) & (g_area <= hi)
            num_gt[:, a] = np.bincount(g_pos[inside], minlength=len(classes))
        precision, recall, _ = accumulate_all(
            m.p_conf[idx],
            rank_rc[idx],
            c_start,
            c_end,
            np.ascontiguousarray(status[idx]),
            num_gt,
            np.asarray(COCO_MAX_DETS, dtype=np.int64),
            COCO_REC_THRESHOLDS,
        )
        so = conf_order[ps[conf_order]]  # the split's predictions in score order
        to = so[tide_incl[so]]
        tide = tide_delta_ap(
            m.p_cls[to],
            m.p_conf[to],
            tide_tp[to],
            m.p_tide[to].astype(np.int8),
            m.p_tide_fix[to],
            m.g_cls[gs & g_ok],
            m.g_tide_miss[gs & g_ok],
            presorted=True,
        )
        # Each class's predictions in score order: a stable (radix) sort of the class positions.
        cls_pos = np.searchsorted(classes, m.p_cls[so])
        by_class = so[
            np.argsort(cls_pos.astype(np.int16 if len(classes) < 2**15 else np.int64), kind="stable")
        ]
        bc_start = np.concatenate([[0], np.cumsum(np.bincount(cls_pos, minlength=len(classes)))])
        per_class: list[dict[str, Any]] = []
        for k, c in enumerate(classes.tolist()):
            sl = idx[c_start[k] : c_end[k]]
            row = _coco_numbers(precision, recall, num_gt, k, k_curve)
            ng = int(num_gt[k, 0])
            tp_n = int(np.count_nonzero(run_tp[sl]))
            fp_n = int(np.count_nonzero(run_fp[sl]))
            p, r, f1 = prf(np.array([tp_n]), np.array([fp_n]), np.array([ng - tp_n]))
            sc = by_class[bc_start[k] : bc_start[k + 1]]
            f1c = f1_curve(m.p_conf[sc], curve_tp[sc], curve_fp[sc], ng, presorted=True)
            t = tide.per_class.get(int(c))
            row.update(
                split=split,
                class_id=int(c),
                num_gt=ng,
                num_pred=int(np.count_nonzero(include[sl])),
                tp=tp_n,
                fp=fp_n,
                fn=ng - tp_n,
                precision=_none(p[0]),
                recall=_none(r[0]),
                f1=_none(f1[0]),
                best_conf_threshold=f1c.best_threshold,
                best_f1=f1c.best_f1,
                f1_curve={**f1c.as_json(), "iou": float(COCO_IOU_THRESHOLDS[k_curve])},
                tide=None if t is None else {**t, "ap": tide.ap.get(int(c))},
            )
            per_class.append(row)
        out.extend(per_class)
        out.append(
            _summary(
                m,
                ps,
                so,
                gs,
                per_class,
                run_tp,
                run_fp,
                include,
                split,
                tide.run,
                tide.map,
                curve_tp,
                curve_fp,
            )
        )
        cells.extend((split, g, p, n) for (g, p), n in _confusion(m, ps, gs, include).items())
    return out, cells


def _coco_numbers(
    precision: NDArray[np.float64],
    recall: NDArray[np.float64],
    num_gt: NDArray[np.int64],
    k: int,
    k_curve: int,
) -> dict[str, Any]:
    """AP/AR of class index k from accumulate_all's arrays (None where the class has no GT)."""
    m100 = len(COCO_MAX_DETS) - 1

    def ap(a: int, t: int | None = None) -> float | None:
        if num_gt[k, a] == 0:
            return None
        s = precision[:, :, k, a, m100] if t is None else precision[t, :, k, a, m100]
        return float(np.mean(s))

    has = num_gt[k, 0] > 0
    pr = None
    if has:
        pr = {
            "iou": 0.5,
            "recall": [round(v, 2) for v in COCO_REC_THRESHOLDS.tolist()],
            "precision": [round(v, 6) for v in precision[0, :, k, 0, m100].tolist()],
            "iou_run": float(COCO_IOU_THRESHOLDS[k_curve]),
            "precision_run": [round(v, 6) for v in precision[k_curve, :, k, 0, m100].tolist()],
        }
    return {
        "ap": ap(0),
        "ap50": ap(0, 0),
        "ap75": ap(0, 5),
        "ap_small": ap(1),
        "ap_medium": ap(2),
        "ap_large": ap(3),
        **{
            f"ar{md}": float(np.mean(recall[:, k, 0, i])) if has else None
            for i, md in enumerate(COCO_MAX_DETS)
        },
        "pr_curve": pr,
    }


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _summary(
    m: Any,
    ps: NDArray[np.bool_],
    so: NDArray[np.int64],
    gs: NDArray[np.bool_],
    per_class: list[dict[str, Any]],
    run_tp: NDArray[np.bool_],
    run_fp: NDArray[np.bool_],
    include: NDArray[np.bool_],
    split: str,
    tide_run: dict[str, float],
    tide_map: float | None,
    curve_tp: NDArray[np.bool_],
    curve_fp: NDArray[np.bool_],
) -> dict[str, Any]:
    """class_id 0: COCO means over classes with GT; counts summed; curves over all predictions."""
    num_gt = int(np.count_nonzero(gs & ~m.g_crowd))
    tp_n = int(np.count_nonzero(ps & run_tp))
    fp_n = int(np.count_nonzero(ps & run_fp))
    p, r, f1 = prf(np.array([tp_n]), np.array([fp_n]), np.array([num_gt - tp_n]))
    # The pooled F1 curve uses every prediction's flags at the run's IoU (not only those kept).
    curve = f1_curve(m.p_conf[so], curve_tp[so], curve_fp[so], num_gt, presorted=True)
    pcs = [c["pr_curve"] for c in per_class if c["pr_curve"] is not None]
    pr = None
    if pcs:
        pr = {
            "iou": 0.5,
            "recall": pcs[0]["recall"],
            "precision": np.mean([c["precision"] for c in pcs], axis=0).round(6).tolist(),
        }
    return {
        "split": split,
        "class_id": SUMMARY_CLASS,
        "num_gt": num_gt,
        "num_pred": int(np.count_nonzero(ps & include)),
        "tp": tp_n,
        "fp": fp_n,
        "fn": num_gt - tp_n,
        "precision": _none(p[0]),
        "recall": _none(r[0]),
        "f1": _none(f1[0]),
        **{
            k: _mean([c[k] for c in per_class])
            for k in ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100")
        },
        "best_conf_threshold": curve.best_threshold,
        "best_f1": curve.best_f1,
        "pr_curve": pr,
        "f1_curve": curve.as_json(),
        "tide": {**tide_run, "ap": tide_map},
    }


def _confusion(
    m: Any, ps: NDArray[np.bool_], gs: NDArray[np.bool_], include: NDArray[np.bool_]
) -> dict[tuple[int, int], int]:
    """At the run's thresholds, from statuses: TP (c, c); paired FP (g, p); FP (None, p); FN (g, None)."""
    tp = ps & include & m.p_status_tp & ~m.p_ignored
    fp = ps & include & ~m.p_status_tp
    fn = gs & ~m.g_status_tp & ~m.g_crowd & ~m.g_partnered
    gt_side = np.concatenate(
        [m.p_cls[tp], np.where(m.p_partner_cls[fp] >= 0, m.p_partner_cls[fp], NONE_CLASS), m.g_cls[fn]]
    )
    pred_side = np.concatenate([m.p_cls[tp], m.p_cls[fp], np.full(int(fn.sum()), NONE_CLASS)])
    return confusion_counts(gt_side.astype(np.int64), pred_side.astype(np.int64))


__all__ = ["ERROR_NAMES", "ROW_CHUNK", "SPLIT_ALL", "SUMMARY_CLASS", "chunks", "class_metrics"]
