"""Numba kernels of the COCO engine over flattened arrays (no Python objects, no I/O).

Layout shared by every kernel: detections and ground truth are sorted and grouped by (category,
image) (category major, images in ascending id order); inside a group the detections are in
descending score order (stable: ties keep the input order, like pycocotools' mergesort) and the
ground truth is in input order. Group ``g`` owns detections ``det_start[g]:det_end[g]`` and ground
truth ``gt_start[g]:gt_end[g]``. Indices stored in the outputs are positions in these sorted arrays.

Kernels: ``match_groups`` (full per-area outputs; ``shared.metrics.rows`` relies on its contract),
``match_groups_status`` (compact TP/FP/ignored codes for ``accumulate_all``), ``accumulate_all``,
``pr_curve`` (one curve), ``to_input_order``, and the grouping helpers ``sort_runs_by_score`` and
``merge_groups`` used by ``coco_input``.

Exactness: every float operation mirrors pycocotools (``maskApi.c`` ``bbIou``, ``evaluateImg``,
``accumulate``) in the same order, so results are bit-identical, not merely close.
"""

from __future__ import annotations

import numba
import numpy as np

_EPS = np.spacing(1.0)
_IOU_CAP = 1.0 - 1e-10


@numba.njit(cache=True, nogil=True)
def box_iou_block(
    det_box: np.ndarray, d0: int, d1: int, gt_box: np.ndarray, gt_crowd: np.ndarray, g0: int, g1: int
) -> np.ndarray:
    """IoU of detections ``d0:d1`` with ground truth ``g0:g1``: ``(d1-d0, g1-g0)`` (bbIou order)."""
    out = np.zeros((d1 - d0, g1 - g0))
    for j in range(g1 - g0):
        gx = gt_box[g0 + j, 0]
        gy = gt_box[g0 + j, 1]
        gw = gt_box[g0 + j, 2]
        gh = gt_box[g0 + j, 3]
        ga = gw * gh
        crowd = gt_crowd[g0 + j]
        for i in range(d1 - d0):
            dx = det_box[d0 + i, 0]
            dy = det_box[d0 + i, 1]
            dw = det_box[d0 + i, 2]
            dh = det_box[d0 + i, 3]
            w = min(dw + dx, gw + gx) - max(dx, gx)
            if w <= 0:
                continue
            h = min(dh + dy, gh + gy) - max(dy, gy)
            if h <= 0:
                continue
            inter = w * h
            da = dw * dh
            union = da if crowd else da + ga - inter
            out[i, j] = inter / union
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _iou_one(det_box: np.ndarray, i: int, gt_box: np.ndarray, j: int, crowd: bool) -> float:
    """bbIou of one pair (same operations as ``box_iou_block``)."""
    dx = det_box[i, 0]
    dy = det_box[i, 1]
    dw = det_box[i, 2]
    dh = det_box[i, 3]
    gx = gt_box[j, 0]
    gy = gt_box[j, 1]
    gw = gt_box[j, 2]
    gh = gt_box[j, 3]
    w = min(dw + dx, gw + gx) - max(dx, gx)
    if w <= 0:
        return 0.0
    h = min(dh + dy, gh + gy) - max(dy, gy)
    if h <= 0:
        return 0.0
    inter = w * h
    da = dw * dh
    union = da if crowd else da + gw * gh - inter
    return inter / union


@numba.njit(cache=True, nogil=True)
def match_block(
    ious: np.ndarray,
    n_det: int,
    gt_crowd_local: np.ndarray,
    gt_area_local: np.ndarray,
    det_area_local: np.ndarray,
    iou_thr: np.ndarray,
    lo: float,
    hi: float,
    dt_match: np.ndarray,
    dt_ignore: np.ndarray,
    gt_match: np.ndarray,
    gt_ignore: np.ndarray,
) -> None:
    """``evaluateImg`` for one (image, class, area range): fills the local outputs in place.

    ious ``(n_det, G)``; dt_match/dt_ignore ``(T, n_det)`` (match = local GT index or -1);
    gt_match ``(T, G)`` (local det index or -1); gt_ignore ``(G,)``.
    """
    n_gt = ious.shape[1]
    n_thr = iou_thr.shape[0]
    order = np.empty(n_gt, dtype=np.int64)
    k = 0
    for j in range(n_gt):
        ig = gt_crowd_local[j] or gt_area_local[j] < lo or gt_area_local[j] > hi
        gt_ignore[j] = ig
        if not ig:
            order[k] = j
            k += 1
    for j in range(n_gt):
        if gt_ignore[j]:
            order[k] = j
            k += 1
    for t in range(n_thr):
        for j in range(n_gt):
            gt_match[t, j] = -1
        thr = min(iou_thr[t], _IOU_CAP)
        for d in range(n_det):
            best = thr
            m = -1
            for jj in range(n_gt):
                j = order[jj]
                if gt_match[t, j] >= 0 and not gt_crowd_local[j]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[j]:
                    break
                if ious[d, j] < best:
                    continue
                best = ious[d, j]
                m = j
            if m == -1:
                dt_match[t, d] = -1
                dt_ignore[t, d] = det_area_local[d] < lo or det_area_local[d] > hi
            else:
                dt_match[t, d] = m
                dt_ignore[t, d] = gt_ignore[m]
                gt_match[t, m] = d


# Detection status codes in ``match_groups_status``' status array.
IGNORED = 0
TP = 1
FP = 2


@numba.njit(cache=True, nogil=True)
def match_groups_status(
    det_box: np.ndarray,
    det_area: np.ndarray,
    gt_box: np.ndarray,
    gt_area: np.ndarray,
    gt_crowd: np.ndarray,
    det_start: np.ndarray,
    det_end: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    iou_thr: np.ndarray,
    area_lo: np.ndarray,
    area_hi: np.ndarray,
    max_det: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match every group at every area range and IoU threshold (compact output for accumulation).

    Returns (N = detections, M = ground truth, A = area ranges, T = thresholds):
    status ``(N, A, T)`` int8: TP (1), FP (2) or IGNORED (0: matched to an ignored GT, unmatched with
    its area outside the range, or past ``max_det``); a detection's codes are contiguous;
    dt_match ``(T, N)`` int64 sorted GT index or -1 at area range 0 ("all");
    gt_match ``(T, M)`` int64 sorted det index or -1 at area range 0; gt_ignore ``(A, M)`` bool;
    det_best_iou ``(N,)`` best IoU with any GT of the group (0 if none), det_best_gt ``(N,)`` its
    index or -1; gt_best_iou ``(M,)`` best IoU with any kept detection.
    """
    n_det_all = det_box.shape[0]
    n_gt_all = gt_box.shape[0]
    n_area = area_lo.shape[0]
    n_thr = iou_thr.shape[0]
    status = np.zeros((n_det_all, n_area, n_thr), dtype=np.int8)
    dt_match = np.full((n_thr, n_det_all), -1, dtype=np.int64)
    gt_match = np.full((n_thr, n_gt_all), -1, dtype=np.int64)
    gt_ignore = np.zeros((n_area, n_gt_all), dtype=np.bool_)
    det_best_iou = np.zeros(n_det_all)
    det_best_gt = np.full(n_det_all, -1, dtype=np.int64)
    gt_best_iou = np.zeros(n_gt_all)
    max_nd = 0
    max_ng = 0
    for g in range(det_start.shape[0]):
        max_nd = max(max_nd, min(det_end[g] - det_start[g], max_det))
        max_ng = max(max_ng, gt_end[g] - gt_start[g])
    ious_buf = np.zeros((max_nd, max_ng))
    dm_buf = np.empty((n_thr, max_nd), dtype=np.int64)
    di_buf = np.empty((n_thr, max_nd), dtype=np.bool_)
    gm_buf = np.empty((n_thr, max_ng), dtype=np.int64)
    gi_buf = np.empty(max_ng, dtype=np.bool_)
    for g in range(det_start.shape[0]):
        d0 = det_start[g]
        d1 = min(det_end[g], d0 + max_det)
        g0 = gt_start[g]
        g1 = gt_end[g]
        nd = d1 - d0
        ng = g1 - g0
        if ng == 0:
            # No GT: every kept detection is a FP unless its area is outside the range.
            for a in range(n_area):
                lo = area_lo[a]
                hi = area_hi[a]
                for i in range(d0, d1):
                    code = IGNORED if det_area[i] < lo or det_area[i] > hi else FP
                    for t in range(n_thr):
                        status[i, a, t] = code
            continue
        ious = ious_buf[:nd, :ng]
        for i in range(nd):
            for j in range(ng):
                v = _iou_one(det_box, d0 + i, gt_box, g0 + j, gt_crowd[g0 + j])
                ious[i, j] = v
                if v > det_best_iou[d0 + i]:
                    det_best_iou[d0 + i] = v
                    det_best_gt[d0 + i] = g0 + j
                if v > gt_best_iou[g0 + j]:
                    gt_best_iou[g0 + j] = v
        dm = dm_buf[:, :nd]
        di = di_buf[:, :nd]
        gm = gm_buf[:, :ng]
        gi = gi_buf[:ng]
        for a in range(n_area):
            match_block(
                ious,
                nd,
                gt_crowd[g0:g1],
                gt_area[g0:g1],
                det_area[d0:d1],
                iou_thr,
                area_lo[a],
                area_hi[a],
                dm,
                di,
                gm,
                gi,
            )
            for j in range(ng):
                gt_ignore[a, g0 + j] = gi[j]
            for t in range(n_thr):
                for i in range(nd):
                    if di[t, i]:
                        status[d0 + i, a, t] = IGNORED
                    elif dm[t, i] >= 0:
                        status[d0 + i, a, t] = TP
                    else:
                        status[d0 + i, a, t] = FP
            if a == 0:
                for t in range(n_thr):
                    for i in range(nd):
                        if dm[t, i] >= 0:
                            dt_match[t, d0 + i] = g0 + dm[t, i]
                    for j in range(ng):
                        if gm[t, j] >= 0:
                            gt_match[t, g0 + j] = d0 + gm[t, j]
    return status, dt_match, gt_match, gt_ignore, det_best_iou, det_best_gt, gt_best_iou


@numba.njit(cache=True, nogil=True)
def match_groups(
    det_box: np.ndarray,
    det_area: np.ndarray,
    gt_box: np.ndarray,
    gt_area: np.ndarray,
    gt_crowd: np.ndarray,
    det_start: np.ndarray,
    det_end: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    iou_thr: np.ndarray,
    area_lo: np.ndarray,
    area_hi: np.ndarray,
    max_det: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match every group at every area range and IoU threshold (full output, every area range).

    Returns (N = detections, M = ground truth, A = area ranges, T = thresholds):
    dt_match ``(A, T, N)`` int64 sorted GT index or -1 (-1 also for detections past ``max_det``);
    dt_ignore ``(A, T, N)`` bool; gt_match ``(A, T, M)`` int64 sorted det index or -1;
    gt_ignore ``(A, M)`` bool; det_best_iou ``(N,)`` best IoU with any GT of the group (0 if none);
    det_best_gt ``(N,)`` its index or -1; gt_best_iou ``(M,)`` best IoU with any kept detection.
    """
    n_det_all = det_box.shape[0]
    n_gt_all = gt_box.shape[0]
    n_area = area_lo.shape[0]
    n_thr = iou_thr.shape[0]
    dt_match = np.full((n_area, n_thr, n_det_all), -1, dtype=np.int64)
    dt_ignore = np.zeros((n_area, n_thr, n_det_all), dtype=np.bool_)
    gt_match = np.full((n_area, n_thr, n_gt_all), -1, dtype=np.int64)
    gt_ignore = np.zeros((n_area, n_gt_all), dtype=np.bool_)
    det_best_iou = np.zeros(n_det_all)
    det_best_gt = np.full(n_det_all, -1, dtype=np.int64)
    gt_best_iou = np.zeros(n_gt_all)
    max_nd = 0
    max_ng = 0
    for g in range(det_start.shape[0]):
        max_nd = max(max_nd, min(det_end[g] - det_start[g], max_det))
        max_ng = max(max_ng, gt_end[g] - gt_start[g])
    ious_buf = np.zeros((max_nd, max_ng))
    dm_buf = np.empty((n_thr, max_nd), dtype=np.int64)
    di_buf = np.empty((n_thr, max_nd), dtype=np.bool_)
    gm_buf = np.empty((n_thr, max_ng), dtype=np.int64)
    gi_buf = np.empty(max_ng, dtype=np.bool_)
    for g in range(det_start.shape[0]):
        d0 = det_start[g]
        d1 = min(det_end[g], d0 + max_det)
        g0 = gt_start[g]
        g1 = gt_end[g]
        nd = d1 - d0
        ng = g1 - g0
        if ng == 0:
            # No GT: nothing matches; unmatched detections outside the range are ignored.
            for a in range(n_area):
                for i in range(d0, d1):
                    out = det_area[i] < area_lo[a] or det_area[i] > area_hi[a]
                    for t in range(n_thr):
                        dt_ignore[a, t, i] = out
            continue
        ious = ious_buf[:nd, :ng]
        for i in range(nd):
            for j in range(ng):
                v = _iou_one(det_box, d0 + i, gt_box, g0 + j, gt_crowd[g0 + j])
                ious[i, j] = v
                if v > det_best_iou[d0 + i]:
                    det_best_iou[d0 + i] = v
                    det_best_gt[d0 + i] = g0 + j
                if v > gt_best_iou[g0 + j]:
                    gt_best_iou[g0 + j] = v
        dm = dm_buf[:, :nd]
        di = di_buf[:, :nd]
        gm = gm_buf[:, :ng]
        gi = gi_buf[:ng]
        for a in range(n_area):
            match_block(
                ious,
                nd,
                gt_crowd[g0:g1],
                gt_area[g0:g1],
                det_area[d0:d1],
                iou_thr,
                area_lo[a],
                area_hi[a],
                dm,
                di,
                gm,
                gi,
            )
            for j in range(ng):
                gt_ignore[a, g0 + j] = gi[j]
            for t in range(n_thr):
                for i in range(nd):
                    dt_ignore[a, t, d0 + i] = di[t, i]
                    if dm[t, i] >= 0:
                        dt_match[a, t, d0 + i] = g0 + dm[t, i]
                for j in range(ng):
                    if gm[t, j] >= 0:
                        gt_match[a, t, g0 + j] = d0 + gm[t, j]
    return dt_match, dt_ignore, gt_match, gt_ignore, det_best_iou, det_best_gt, gt_best_iou


@numba.njit(cache=True, nogil=True)
def _curve_into(
    tp: np.ndarray,
    fp: np.ndarray,
    scores: np.ndarray,
    nd: int,
    num_gt: int,
    rec_thr: np.ndarray,
    rc: np.ndarray,
    pr: np.ndarray,
    q: np.ndarray,
    ss: np.ndarray,
) -> float:
    """COCOeval.accumulate's inner loop on the first ``nd`` entries; fills q/ss, returns recall."""
    n_rec = rec_thr.shape[0]
    tp_sum = 0.0
    fp_sum = 0.0
    for i in range(nd):
        if tp[i]:
            tp_sum += 1.0
        if fp[i]:
            fp_sum += 1.0
        rc[i] = tp_sum / num_gt
        pr[i] = tp_sum / (fp_sum + tp_sum + _EPS)
    for i in range(nd - 1, 0, -1):
        if pr[i] > pr[i - 1]:
            pr[i - 1] = pr[i]
    for ri in range(n_rec):
        q[ri] = 0.0
        ss[ri] = 0.0
    # searchsorted(rc, rec_thr, side="left") by a merge: both are sorted.
    pi = 0
    for ri in range(n_rec):
        while pi < nd and rc[pi] < rec_thr[ri]:
            pi += 1
        if pi >= nd:
            break
        q[ri] = pr[pi]
        ss[ri] = scores[pi]
    return rc[nd - 1] if nd > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def pr_curve(
    tp: np.ndarray, fp: np.ndarray, scores: np.ndarray, num_gt: int, rec_thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """One COCOeval.accumulate curve from score-sorted flags.

    tp, fp, scores ``(n,)`` in descending score order (ignored detections have both flags False
    but keep their position). Returns precision ``(R,)``, score at each recall point ``(R,)``, recall.
    """
    nd = tp.shape[0]
    q = np.zeros(rec_thr.shape[0])
    ss = np.zeros(rec_thr.shape[0])
    rc = np.empty(nd)
    pr = np.empty(nd)
    recall = _curve_into(tp, fp, scores, nd, num_gt, rec_thr, rc, pr, q, ss)
    return q, ss, recall


@numba.njit(cache=True, nogil=True)
def accumulate_all(
    det_score: np.ndarray,
    det_rank: np.ndarray,
    cat_det_start: np.ndarray,
    cat_det_end: np.ndarray,
    status: np.ndarray,
    num_gt: np.ndarray,
    max_dets: np.ndarray,
    rec_thr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval.accumulate over every category, area range and max-detections setting.

    status ``(N, A, T)`` from ``match_groups_status``; det_rank ``(N,)`` is a detection's rank inside its
    (image, category) group; categories own contiguous ranges ``cat_det_start[k]:cat_det_end[k]``;
    num_gt ``(K, A)`` counts non-ignored GT.
    Returns precision ``(T, R, K, A, M)``, recall ``(T, K, A, M)``, scores ``(T, R, K, A, M)``,
    -1 where a category has no non-ignored GT (pycocotools layout; the caller maps -1 to None).

    Same numbers as ``pr_curve`` on every curve, computed from the true positives only: recall
    rises only at a TP, so ``searchsorted(rc, r, "left")`` is position 0 or the position of the
    ``c``-th TP where ``c`` is the first count with ``c / num_gt >= r``; precision falls between
    TPs, so the right-to-left envelope at a TP is the max over the later TPs. All A x T curves of
    a category are built in one pass over its detections.
    """
    _, n_area, n_thr = status.shape
    n_cat = cat_det_start.shape[0]
    n_rec = rec_thr.shape[0]
    n_m = max_dets.shape[0]
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_m))
    recall = -np.ones((n_thr, n_cat, n_area, n_m))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, n_m))
    max_gt = 1
    for k in range(n_cat):
        for a in range(n_area):
            max_gt = max(max_gt, num_gt[k, a])
    ev_pr = np.empty((n_area, n_thr, max_gt))
    ev_pos = np.empty((n_area, n_thr, max_gt), dtype=np.int64)
    n_tp = np.empty((n_area, n_thr), dtype=np.int64)
    n_fp = np.empty((n_area, n_thr), dtype=np.int64)
    c_min = np.empty(n_rec, dtype=np.int64)
    for k in range(n_cat):
        c0 = cat_det_start[k]
        c1 = cat_det_end[k]
        any_gt = False
        for a in range(n_area):
            if num_gt[k, a] > 0:
                any_gt = True
        if not any_gt:
            continue
        for m in range(n_m):
            sel = np.empty(c1 - c0, dtype=np.int64)
            n = 0
            for i in range(c0, c1):
                if det_rank[i] < max_dets[m]:
                    sel[n] = i
                    n += 1
            sel = sel[:n]
            neg = np.empty(n)
            for i in range(n):
                neg[i] = -det_score[sel[i]]
            order = sel[np.argsort(neg, kind="mergesort")]
            n_tp[:] = 0
            n_fp[:] = 0
            for i in range(n):
                row = status[order[i]]
                for a in range(n_area):
                    if num_gt[k, a] == 0:
                        continue
                    for t in range(n_thr):
                        code = row[a, t]
                        if code == FP:
                            n_fp[a, t] += 1
                        elif code == TP:
                            c = n_tp[a, t] + 1
                            n_tp[a, t] = c
                            tps = float(c)
                            ev_pr[a, t, c - 1] = tps / (float(n_fp[a, t]) + tps + _EPS)
                            ev_pos[a, t, c - 1] = i
            for a in range(n_area):
                ng = num_gt[k, a]
                if ng == 0:
                    continue
                # First TP count reaching each recall threshold (exact: same float division).
                c = 0
                for ri in range(n_rec):
                    while c <= ng and float(c) / ng < rec_thr[ri]:
                        c += 1
                    c_min[ri] = c
                for t in range(n_thr):
                    ntp = n_tp[a, t]
                    for e in range(ntp - 2, -1, -1):
                        if ev_pr[a, t, e + 1] > ev_pr[a, t, e]:
                            ev_pr[a, t, e] = ev_pr[a, t, e + 1]
                    recall[t, k, a, m] = float(ntp) / ng if n > 0 else 0.0
                    for ri in range(n_rec):
                        cm = c_min[ri]
                        if n == 0 or cm > ntp:
                            qv = 0.0
                            sv = 0.0
                        elif cm == 0:
                            qv = ev_pr[a, t, 0] if ntp > 0 else 0.0
                            sv = det_score[order[0]]
                        else:
                            qv = ev_pr[a, t, cm - 1]
                            sv = det_score[order[ev_pos[a, t, cm - 1]]]
                        precision[t, ri, k, a, m] = qv
                        scores[t, ri, k, a, m] = sv
    return precision, recall, scores


@numba.njit(cache=True, nogil=True)
def to_input_order(
    n_det_in: int,
    n_gt_in: int,
    det_input: np.ndarray,
    gt_input: np.ndarray,
    det_rank: np.ndarray,
    max_det: int,
    status0: np.ndarray,
    dt_match: np.ndarray,
    gt_match: np.ndarray,
    gt_ignore0: np.ndarray,
    det_best_iou: np.ndarray,
    det_best_gt: np.ndarray,
    gt_best_iou: np.ndarray,
    det_box: np.ndarray,
    gt_box: np.ndarray,
    gt_crowd: np.ndarray,
):  # type: ignore[no-untyped-def]
    """Scatter area-"all" outcomes from sorted order back to input order (see ``CocoMatches``)."""
    n_thr = dt_match.shape[0]
    d_eval = np.zeros(n_det_in, dtype=np.bool_)
    d_match = np.full((n_thr, n_det_in), -1, dtype=np.int64)
    d_ign = np.ones((n_thr, n_det_in), dtype=np.bool_)
    d_best = np.zeros(n_det_in)
    d_best_gt = np.full(n_det_in, -1, dtype=np.int64)
    d_iou = np.full((n_thr, n_det_in), np.nan)
    g_eval = np.zeros(n_gt_in, dtype=np.bool_)
    g_match = np.full((n_thr, n_gt_in), -1, dtype=np.int64)
    g_ign = np.ones(n_gt_in, dtype=np.bool_)
    g_best = np.zeros(n_gt_in)
    for i in range(det_input.shape[0]):
        o = det_input[i]
        kept = det_rank[i] < max_det
        d_eval[o] = kept
        d_best[o] = det_best_iou[i]
        if det_best_gt[i] >= 0:
            d_best_gt[o] = gt_input[det_best_gt[i]]
        if not kept:
            continue
        for t in range(n_thr):
            d_ign[t, o] = status0[i, t] == IGNORED
            j = dt_match[t, i]
            if j >= 0:
                d_match[t, o] = gt_input[j]
                d_iou[t, o] = _iou_one(det_box, i, gt_box, j, gt_crowd[j])
    for j in range(gt_input.shape[0]):
        o = gt_input[j]
        g_eval[o] = True
        g_ign[o] = gt_ignore0[j]
        g_best[o] = gt_best_iou[j]
        for t in range(n_thr):
            if gt_match[t, j] >= 0:
                g_match[t, o] = det_input[gt_match[t, j]]
    return d_eval, d_match, d_ign, d_best, d_best_gt, d_iou, g_eval, g_match, g_ign, g_best


@numba.njit(cache=True, nogil=True)
def sort_runs_by_score(order: np.ndarray, key: np.ndarray, neg_score: np.ndarray) -> None:
    """``order`` is stably sorted by ``key``; sort each run of equal keys by ``neg_score``, stably."""
    n = order.shape[0]
    i = 0
    while i < n:
        k = key[order[i]]
        j = i + 1
        while j < n and key[order[j]] == k:
            j += 1
        if j - i > 32:
            sub = order[i:j].copy()
            vals = neg_score[sub]
            order[i:j] = sub[np.argsort(vals, kind="mergesort")]
        elif j - i > 1:
            for p in range(i + 1, j):  # insertion sort: stable (moves past strictly greater only)
                cur = order[p]
                v = neg_score[cur]
                q = p - 1
                while q >= i and neg_score[order[q]] > v:
                    order[q + 1] = order[q]
                    q -= 1
                order[q + 1] = cur
        i = j


@numba.njit(cache=True, nogil=True)
def merge_groups(
    dkey: np.ndarray, gkey: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups from sorted detection keys ``(N,)`` and GT keys ``(M,)``: every key of either side.

    Returns keys ``(P,)``, det_start/det_end ``(P,)``, gt_start/gt_end ``(P,)``, det_rank ``(N,)``.
    """
    n = dkey.shape[0]
    m = gkey.shape[0]
    keys = np.empty(n + m, dtype=np.int64)
    ds = np.empty(n + m, dtype=np.int64)
    de = np.empty(n + m, dtype=np.int64)
    gs = np.empty(n + m, dtype=np.int64)
    ge = np.empty(n + m, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    i = 0
    j = 0
    p = 0
    while i < n or j < m:
        k = dkey[i] if (j >= m or (i < n and dkey[i] <= gkey[j])) else gkey[j]
        keys[p] = k
        ds[p] = i
        while i < n and dkey[i] == k:
            rank[i] = i - ds[p]
            i += 1
        de[p] = i
        gs[p] = j
        while j < m and gkey[j] == k:
            j += 1
        ge[p] = j
        p += 1
    return keys[:p].copy(), ds[:p].copy(), de[:p].copy(), gs[:p].copy(), ge[:p].copy(), rank
