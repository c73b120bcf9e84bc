"""Per-object and per-row metrics of a batch of rows (definitions: docs/metrics.md, "Per row").

``evaluate_rows(batch, iou_threshold, conf_threshold) -> RowsEvaluation``:

- COCO matching (pycocotools ``evaluateImg``, via ``coco_kernels.match_groups``) of ALL predictions of
  every (row, class), at the 10 COCO IoU thresholds (plus the run's threshold when it is off the grid)
  and the four area ranges. From it: ``tp_mask``/``ign_mask``/``area_masks`` (threshold-free, what
  per-class AP and threshold changes are computed from) and the status at the run's thresholds.
- The run's thresholds: a prediction takes part when ``confidence >= conf_threshold``; one below it is
  kept (with its masks) but neither shown nor counted. A GT is a TP when the prediction matching it
  takes part. COCO matching is greedy in descending confidence, so dropping the predictions below a
  cut never changes the matches of those above it.
- TIDE error types (``shared.metrics.tide``) for every counted FP and FN (t_f = the run's IoU
  threshold, t_b = 0.1), and separately at t_f = 0.5 over all predictions for TIDE dAP.
- Per row and per (row, class): counts, precision/recall/F1, mean IoU, confidence stats, TIDE counts
  and the Labelbox-compatible family (``shared.metrics.labelbox``).

Crowd GT (``iscrowd``) are ``ignored``: never FN; a prediction matched to one is ``ignored`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.metrics import coco_kernels as K
from shared.metrics.boxes import paired_iou
from shared.metrics.coco_params import AREA_NAMES, AREA_RANGES, COCO_IOU_THRESHOLDS
from shared.metrics.labelbox import group_metrics
from shared.metrics.tide import ERROR_NAMES, classify_rows

__all__ = [
    "MAX_DETS_TIDE",
    "TIDE_BACKGROUND",
    "TIDE_FOREGROUND",
    "ObjectResults",
    "RowBatch",
    "RowTable",
    "RowsEvaluation",
    "evaluate_rows",
    "grid_index",
    "prf",
]

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]

TIDE_FOREGROUND = 0.5
TIDE_BACKGROUND = 0.1
MAX_DETS_TIDE = 100  # tidecv keeps the 100 best predictions of an image
_NO_LIMIT = 1 << 40
_GRID_WEIGHTS = (1 << np.arange(len(COCO_IOU_THRESHOLDS), dtype=np.int64))[:, None]


def grid_index(iou_threshold: float) -> int | None:
    """Index k of ``0.50 + 0.05 k`` equal to ``iou_threshold`` (within 1e-9), else None."""
    hit = np.nonzero(np.abs(COCO_IOU_THRESHOLDS - iou_threshold) < 1e-9)[0]
    return int(hit[0]) if len(hit) else None


@dataclass(frozen=True)
class RowBatch:
    """Ground truth and predictions of some rows of one run (any order). P predictions, G GT.

    row_ids ``(R,)`` the rows to evaluate (rows without objects included).
    pred_id/pred_row/pred_cls ``(P,)`` int64, pred_box ``(P, 4)`` xywh, pred_score ``(P,)``.
    gt_id/gt_row/gt_cls ``(G,)`` int64, gt_box ``(G, 4)``, gt_area ``(G,)``, gt_crowd ``(G,)`` bool.
    """

    row_ids: I64
    pred_id: I64
    pred_row: I64
    pred_cls: I64
    pred_box: F64
    pred_score: F64
    gt_id: I64
    gt_row: I64
    gt_cls: I64
    gt_box: F64
    gt_area: F64
    gt_crowd: B


@dataclass(frozen=True)
class ObjectResults:
    """One entry per object (predictions first, then GT); the columns of ``object_matches``.

    kind_is_pred ``(O,)``; status ``(O,)`` str TP/FP/FN; matched_object_id ``(O,)`` (-1 = none);
    iou ``(O,)`` NaN = none; error_type / tide_error ``(O,)`` object (str or None); tide_fix_class -1 =
    none; match_ious ``(O, 10)`` NaN rows when not needed (``has_match_ious`` False).
    """

    kind_is_pred: B
    object_id: I64
    data_row_id: I64
    class_id: I64
    confidence: F64
    status: NDArray[np.object_]
    matched_object_id: I64
    iou: F64
    error_type: NDArray[np.object_]
    tp_mask: I64
    area: F64
    iscrowd: B
    ignored: B
    ign_mask: I64
    area_masks: I64
    match_iou: F64
    match_ious: F64
    has_match_ious: B
    tide_error: NDArray[np.object_]
    tide_fix_class: I64


@dataclass(frozen=True)
class RowTable:
    """Per-row (or per (row, class)) metrics; every array ``(N,)``. NaN = undefined (NULL)."""

    data_row_id: I64
    class_id: I64 | None
    num_gt: I64
    num_pred: I64
    tp: I64
    fp: I64
    fn: I64
    precision: F64
    recall: F64
    f1: F64
    mean_iou: F64
    min_conf: F64
    mean_conf: F64
    max_conf: F64
    lb_iou: F64
    lb_tp: F64
    lb_fp: F64
    lb_fn: F64
    n_err: dict[str, I64]


@dataclass(frozen=True)
class RowsEvaluation:
    objects: ObjectResults
    rows: RowTable
    row_classes: RowTable


def prf(tp: NDArray[np.integer], fp: NDArray[np.integer], fn: NDArray[np.integer]) -> tuple[F64, F64, F64]:
    """Precision, recall, F1 with the house conventions (NaN = undefined).

    precision = TP / (TP + FP), undefined without counted predictions; recall = TP / (TP + FN),
    undefined without GT; F1 = 2PR / (P + R) when both are defined (0 when both are 0); when only one
    is defined F1 equals it if it is 0 (a row of errors only scores F1 0), else is undefined.
    """
    tp_f, fp_f, fn_f = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp_f + fp_f > 0, tp_f / (tp_f + fp_f), np.nan)
        r = np.where(tp_f + fn_f > 0, tp_f / (tp_f + fn_f), np.nan)
        both = ~np.isnan(p) & ~np.isnan(r)
        f1 = np.where(both, np.where(p + r > 0, 2 * p * r / (p + r), 0.0), np.nan)
    only_p_zero = ~np.isnan(p) & np.isnan(r) & (p == 0)
    only_r_zero = np.isnan(p) & ~np.isnan(r) & (r == 0)
    f1 = np.where(only_p_zero | only_r_zero, 0.0, f1)
    return p, r, f1


def _groups(pred_row: I64, pred_cls: I64, gt_row: I64, gt_cls: I64) -> tuple[I64, I64, I64, I64]:
    """Group index of every prediction and GT by (row, class), plus the groups' row and class."""
    rows = np.concatenate([pred_row, gt_row])
    cls = np.concatenate([pred_cls, gt_cls])
    if len(rows) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, e
    order = np.lexsort((cls, rows))
    rs, cs = rows[order], cls[order]
    new = np.ones(len(rs), dtype=bool)
    new[1:] = (rs[1:] != rs[:-1]) | (cs[1:] != cs[:-1])
    gid_sorted = np.cumsum(new) - 1
    gid = np.empty(len(rows), dtype=np.int64)
    gid[order] = gid_sorted
    return gid[: len(pred_row)], gid[len(pred_row) :], rs[new], cs[new]


def _bounds(sorted_gid: I64, n: int) -> tuple[I64, I64]:
    ids = np.arange(n)
    return (
        np.searchsorted(sorted_gid, ids, side="left").astype(np.int64),
        np.searchsorted(sorted_gid, ids, side="right").astype(np.int64),
    )


def _mask(flags: B) -> I64:
    """``(10, N)`` bool -> ``(N,)`` bitmask."""
    return (flags[: len(COCO_IOU_THRESHOLDS)].astype(np.int64) * _GRID_WEIGHTS).sum(axis=0)


_NAMES = np.array(ERROR_NAMES, dtype=object)


def _pick(flags: B, index: I64) -> B:
    """``flags[index]`` where ``index >= 0``, else False (also when ``flags`` is empty)."""
    if len(flags) == 0:
        return np.zeros(len(index), dtype=bool)
    return (index >= 0) & flags[np.maximum(index, 0)]


def _named(codes: NDArray[np.int8], where: B) -> NDArray[np.object_]:
    """Error codes -> names (None where ``where`` is False)."""
    out = np.full(len(codes), None, dtype=object)
    out[where] = _NAMES[codes[where]]
    return out


def evaluate_rows(batch: RowBatch, iou_threshold: float, conf_threshold: float) -> RowsEvaluation:
    """Per-object, per-row and per-(row, class) metrics of a batch at the run's thresholds."""
    row_ids = np.asarray(batch.row_ids, dtype=np.int64)
    # Sort: predictions by (row, class, -score, id); GT by (row, class, id).
    p_ord = np.lexsort((batch.pred_id, -batch.pred_score, batch.pred_cls, batch.pred_row))
    g_ord = np.lexsort((batch.gt_id, batch.gt_cls, batch.gt_row))
    pid, prow, pcls = batch.pred_id[p_ord], batch.pred_row[p_ord], batch.pred_cls[p_ord]
    pbox = np.ascontiguousarray(batch.pred_box[p_ord], dtype=np.float64).reshape(-1, 4)
    pscore = np.asarray(batch.pred_score, dtype=np.float64)[p_ord]
    gid_, grow, gcls = batch.gt_id[g_ord], batch.gt_row[g_ord], batch.gt_cls[g_ord]
    gbox = np.ascontiguousarray(batch.gt_box[g_ord], dtype=np.float64).reshape(-1, 4)
    garea = np.asarray(batch.gt_area, dtype=np.float64)[g_ord]
    gcrowd = np.asarray(batch.gt_crowd, dtype=bool)[g_ord]
    n_pred, n_gt = len(pid), len(gid_)
    p_grp, g_grp, grp_row, grp_cls = _groups(prow, pcls, grow, gcls)
    n_grp = len(grp_row)
    d_start, d_end = _bounds(p_grp, n_grp)
    gt_start, gt_end = _bounds(g_grp, n_grp)

    # Thresholds: the COCO grid, plus the run's own when it is off the grid.
    k_run = grid_index(iou_threshold)
    thr = COCO_IOU_THRESHOLDS
    if k_run is None:
        thr = np.append(COCO_IOU_THRESHOLDS, iou_threshold)
        k_run = len(COCO_IOU_THRESHOLDS)
    area_lo = np.array([AREA_RANGES[a][0] for a in AREA_NAMES])
    area_hi = np.array([AREA_RANGES[a][1] for a in AREA_NAMES])
    d_area = pbox[:, 2] * pbox[:, 3]
    dt_match, dt_ignore, gt_match, gt_ignore, _, _, _ = K.match_groups(
        pbox, d_area, gbox, garea, gcrowd, d_start, d_end, gt_start, gt_end, thr, area_lo, area_hi, _NO_LIMIT
    )
    matched = dt_match >= 0  # (A, T, P)
    tp_flags = matched & ~dt_ignore
    ign_flags = matched & dt_ignore
    tp_mask = _mask(tp_flags[0])
    ign_mask = _mask(ign_flags[0])
    area_masks = np.zeros(n_pred, dtype=np.int64)
    for a in range(1, len(AREA_NAMES)):
        shift = 20 * (a - 1)
        area_masks |= _mask(tp_flags[a]) << shift
        area_masks |= _mask(ign_flags[a]) << (shift + 10)
    gt_tp_mask = _mask((gt_match[0] >= 0) & ~gt_ignore[0][None, :])

    # IoU with the matched GT at every threshold (NaN where unmatched).
    n_thr = dt_match.shape[1]
    match_ious_all = np.full((n_thr, n_pred), np.nan)
    t_idx, d_idx = np.nonzero(matched[0])
    if len(t_idx):
        m_idx = dt_match[0][t_idx, d_idx]
        match_ious_all[t_idx, d_idx] = paired_iou(pbox[d_idx], gbox[m_idx], gcrowd[m_idx])
    grid = len(COCO_IOU_THRESHOLDS)
    first = np.argmax(matched[0, :grid], axis=0)
    any_match = matched[0, :grid].any(axis=0)
    match_iou = np.where(any_match, match_ious_all[first, np.arange(n_pred)], np.nan)
    m_grid = np.where(matched[0, :grid], dt_match[0, :grid], -1)
    lo_gt = np.where(matched[0, :grid], m_grid, np.iinfo(np.int64).max).min(axis=0)
    hi_gt = m_grid.max(axis=0)
    has_match_ious = any_match & (lo_gt != hi_gt)

    # Status at the run's thresholds.
    include = pscore >= conf_threshold
    run_m = dt_match[0, k_run]
    run_ign = dt_ignore[0, k_run] & (run_m >= 0)
    p_matched = run_m >= 0
    p_tp = include & p_matched & ~run_ign
    p_fp = include & ~p_matched
    g_by = gt_match[0, k_run]
    g_used = (g_by >= 0) & _pick(include, g_by) if n_gt else np.zeros(0, dtype=bool)
    g_ign = gt_ignore[0] if n_gt else np.zeros(0, dtype=bool)
    g_fn = ~g_used & ~g_ign
    run_iou = np.where(p_matched, match_ious_all[k_run], np.nan)

    # Row order for TIDE: predictions by (row, -score, id), GT by (row, id).
    row_pos = {int(r): i for i, r in enumerate(row_ids.tolist())}
    n_rows = len(row_ids)
    prow_i = np.fromiter((row_pos[r] for r in prow.tolist()), dtype=np.int64, count=n_pred)
    grow_i = np.fromiter((row_pos[r] for r in grow.tolist()), dtype=np.int64, count=n_gt)
    tp_ord = np.lexsort((pid, -pscore, prow_i))
    tg_ord = np.lexsort((gid_, grow_i))
    rp_start, rp_end = _bounds(prow_i[tp_ord], n_rows)
    rg_start, rg_end = _bounds(grow_i[tg_ord], n_rows)
    inv_g = np.empty(n_gt, dtype=np.int64)
    inv_g[tg_ord] = np.arange(n_gt)

    def tide(
        include_: B, tp_: B, used_: B, t_f: float
    ) -> tuple[NDArray[np.int8], I64, B, F64, I64, NDArray[np.int8], F64, I64]:
        e = classify_rows(
            rp_start,
            rp_end,
            rg_start,
            rg_end,
            pbox[tp_ord],
            pcls[tp_ord],
            include_[tp_ord],
            tp_[tp_ord],
            gbox[tg_ord],
            gcls[tg_ord],
            gcrowd[tg_ord],
            used_[tg_ord],
            t_f,
            TIDE_BACKGROUND,
        )
        back_p = np.empty(n_pred, dtype=np.int64)
        back_p[tp_ord] = np.arange(n_pred)

        # Map outputs back to the (row, class, score) order; GT indices back through tg_ord.
        def gidx(a: I64) -> I64:
            return np.where(a >= 0, tg_ord[np.maximum(a, 0)], -1) if n_gt else a

        def pidx(a: I64) -> I64:
            return np.where(a >= 0, tp_ord[np.maximum(a, 0)], -1) if n_pred else a

        return (
            e.pred_error[back_p],
            gidx(e.pred_target[back_p]),
            e.pred_fix[back_p],
            e.pred_best_iou[back_p],
            gidx(e.pred_partner[back_p]),
            e.gt_error[inv_g],
            e.gt_best_iou[inv_g],
            pidx(e.gt_partner[inv_g]),
        )

    p_err, _, _, p_best, p_partner, g_err, g_best, g_partner = tide(
        include & ~run_ign, p_tp, g_used & ~g_ign, float(thr[k_run])
    )
    # TIDE at t_f 0.5 over the 100 best predictions of each row, for dAP.
    rank_in_row = np.empty(n_pred, dtype=np.int64)
    rank_in_row[tp_ord] = np.arange(n_pred) - rp_start[prow_i[tp_ord]]
    t_incl = (rank_in_row < MAX_DETS_TIDE) & ~(dt_ignore[0, 0] & matched[0, 0])
    t_tp = t_incl & matched[0, 0]
    t_by = gt_match[0, 0]
    t_used = (t_by >= 0) & _pick(t_incl, t_by) & ~g_ign if n_gt else np.zeros(0, dtype=bool)
    tp_err, tp_target, tp_fix, _, _, tg_err, _, _ = tide(t_incl, t_tp, t_used, TIDE_FOREGROUND)
    fix_cls = np.where(tp_fix & (tp_target >= 0), gcls[np.maximum(tp_target, 0)] if n_gt else -1, -1)

    p_status = np.where(p_matched, "TP", "FP").astype(object)
    g_status = np.where(g_used, "TP", "FN").astype(object)
    p_matched_id = np.where(
        p_matched,
        gid_[np.maximum(run_m, 0)] if n_gt else -1,
        np.where(p_partner >= 0, gid_[np.maximum(p_partner, 0)] if n_gt else -1, -1),
    )
    g_matched_id = np.where(
        g_used,
        pid[np.maximum(g_by, 0)] if n_pred else -1,
        np.where(g_fn & (g_partner >= 0), pid[np.maximum(g_partner, 0)] if n_pred else -1, -1),
    )
    g_run_iou = np.full(n_gt, np.nan)
    if n_gt and g_used.any():
        g_run_iou[g_used] = run_iou[g_by[g_used]]
    p_iou = np.where(p_matched, run_iou, p_best)
    g_iou = np.where(g_used, g_run_iou, g_best)
    p_error = _named(p_err, p_fp)
    g_error = _named(g_err, g_fn)

    objects = ObjectResults(
        kind_is_pred=np.concatenate([np.ones(n_pred, bool), np.zeros(n_gt, bool)]),
        object_id=np.concatenate([pid, gid_]),
        data_row_id=np.concatenate([prow, grow]),
        class_id=np.concatenate([pcls, gcls]),
        confidence=np.concatenate([pscore, np.full(n_gt, np.nan)]),
        status=np.concatenate([p_status, g_status]),
        matched_object_id=np.concatenate([p_matched_id, g_matched_id]).astype(np.int64),
        iou=np.concatenate([p_iou, g_iou]),
        error_type=np.concatenate([p_error, g_error]),
        tp_mask=np.concatenate([tp_mask, gt_tp_mask]),
        area=np.concatenate([d_area, garea]),
        iscrowd=np.concatenate([np.zeros(n_pred, bool), gcrowd]),
        ignored=np.concatenate([run_ign, g_ign]),
        ign_mask=np.concatenate([ign_mask, np.zeros(n_gt, np.int64)]),
        area_masks=np.concatenate([area_masks, np.zeros(n_gt, np.int64)]),
        match_iou=np.concatenate([match_iou, np.full(n_gt, np.nan)]),
        match_ious=np.concatenate([match_ious_all[:grid].T, np.full((n_gt, grid), np.nan)]),
        has_match_ious=np.concatenate([has_match_ious, np.zeros(n_gt, bool)]),
        tide_error=np.concatenate([_named(tp_err, tp_err > 0), _named(tg_err, tg_err > 0)]),
        tide_fix_class=np.concatenate([fix_cls, np.full(n_gt, -1)]).astype(np.int64),
    )

    # Per (row, class) and per row.
    lb = group_metrics_for(pbox, pid, p_grp, include, gbox, gid_, g_grp, g_ign, n_grp, iou_threshold)
    grp_rows_i = np.fromiter((row_pos[r] for r in grp_row.tolist()), dtype=np.int64, count=n_grp)

    def table(p_key: I64, g_key: I64, n: int, ids: I64, cls: I64 | None, lb_key: I64) -> RowTable:
        def cnt(mask: B, key: I64) -> I64:
            return np.bincount(key[mask], minlength=n).astype(np.int64)

        num_pred = cnt(include, p_key)
        tp = cnt(p_tp, p_key)
        fp = cnt(p_fp, p_key)
        num_gt = cnt(~g_ign, g_key)
        fn = num_gt - tp
        p, r, f1 = prf(tp, fp, fn)
        iou_sum = np.bincount(p_key[p_tp], weights=run_iou[p_tp], minlength=n)
        conf_sum = np.bincount(p_key[include], weights=pscore[include], minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_iou = np.where(tp > 0, iou_sum / np.maximum(tp, 1), np.nan)
            mean_conf = np.where(num_pred > 0, conf_sum / np.maximum(num_pred, 1), np.nan)
        min_conf = np.full(n, np.inf)
        max_conf = np.full(n, -np.inf)
        np.minimum.at(min_conf, p_key[include], pscore[include])
        np.maximum.at(max_conf, p_key[include], pscore[include])
        min_conf[num_pred == 0] = np.nan
        max_conf[num_pred == 0] = np.nan
        n_err = {}
        for code, name in enumerate(ERROR_NAMES):
            if name is None:
                continue
            n_err[name] = cnt(p_fp & (p_err == code), p_key) + cnt(g_fn & (g_err == code), g_key)
        # Labelbox: sums over the classes of the key; IoU = mean over classes with objects.
        present = ~np.isnan(lb.miou)
        lb_tp = np.bincount(lb_key, weights=lb.tp, minlength=n)
        lb_fp = np.bincount(lb_key, weights=lb.fp, minlength=n)
        lb_fn = np.bincount(lb_key, weights=lb.fn, minlength=n)
        n_cls = np.bincount(lb_key[present], minlength=n)
        iou_cls = np.bincount(lb_key[present], weights=lb.miou[present], minlength=n)
        has = n_cls > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            lb_iou = np.where(has, iou_cls / np.maximum(n_cls, 1), np.nan)
        nan = np.nan
        return RowTable(
            data_row_id=ids,
            class_id=cls,
            num_gt=num_gt,
            num_pred=num_pred,
            tp=tp,
            fp=fp,
            fn=fn,
            precision=p,
            recall=r,
            f1=f1,
            mean_iou=mean_iou,
            min_conf=min_conf,
            mean_conf=mean_conf,
            max_conf=max_conf,
            lb_iou=lb_iou,
            lb_tp=np.where(has, lb_tp, nan),
            lb_fp=np.where(has, lb_fp, nan),
            lb_fn=np.where(has, lb_fn, nan),
            n_err=n_err,
        )

    rows = table(prow_i, grow_i, n_rows, row_ids, None, grp_rows_i)
    row_classes = table(p_grp, g_grp, n_grp, grp_row, grp_cls, np.arange(n_grp, dtype=np.int64))
    return RowsEvaluation(objects, rows, row_classes)


@dataclass(frozen=True)
class _LB:
    tp: F64
    fp: F64
    fn: F64
    miou: F64


def group_metrics_for(
    pbox: F64,
    pid: I64,
    p_grp: I64,
    include: B,
    gbox: F64,
    gid_: I64,
    g_grp: I64,
    g_ign: B,
    n_grp: int,
    iou_threshold: float,
) -> _LB:
    """Labelbox family per (row, class) group: included predictions and non-crowd GT, id order."""
    pk = np.nonzero(include)[0]
    pk = pk[np.lexsort((pid[pk], p_grp[pk]))]
    gk = np.nonzero(~g_ign)[0]
    gk = gk[np.lexsort((gid_[gk], g_grp[gk]))]
    ps, pe = _bounds(p_grp[pk], n_grp)
    gs, ge = _bounds(g_grp[gk], n_grp)
    c = group_metrics(gbox[gk], pbox[pk], gs, ge, ps, pe, iou_threshold)
    empty = np.isnan(c.miou)
    return _LB(
        np.where(empty, 0, c.tp).astype(np.float64),
        np.where(empty, 0, c.fp).astype(np.float64),
        np.where(empty, 0, c.fn).astype(np.float64),
        c.miou,
    )
