"""Numba kernels of COCO accumulation (``COCOeval.accumulate``) and of the per-object scatter.

Same conventions as ``coco_kernels`` (flattened, grouped arrays; positions in the sorted arrays);
every float operation mirrors pycocotools, so the curves are bit-identical.
"""

from __future__ import annotations

import numba
import numpy as np

from shared.metrics.coco_kernels import FP, IGNORED, TP, iou_pair

_EPS = np.spacing(1.0)


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
def uniform_codes(status: np.ndarray) -> np.ndarray:
    """``(N, A)``: a detection's code when equal at every threshold of the area range, else -1."""
    n, n_area, n_thr = status.shape
    out = np.empty((n, n_area), dtype=np.int8)
    for i in range(n):
        for a in range(n_area):
            first = status[i, a, 0]
            out[i, a] = first
            for t in range(1, n_thr):
                if status[i, a, t] != first:
                    out[i, a] = -1
                    break
    return out


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
    """``accumulate_all_uniform`` with the ``uniform`` codes derived from ``status`` (same result)."""
    return accumulate_all_uniform(
        det_score,
        det_rank,
        cat_det_start,
        cat_det_end,
        status,
        uniform_codes(status),
        num_gt,
        max_dets,
        rec_thr,
    )


@numba.njit(cache=True, nogil=True)
def accumulate_all_uniform(
    det_score: np.ndarray,
    det_rank: np.ndarray,
    cat_det_start: np.ndarray,
    cat_det_end: np.ndarray,
    status: np.ndarray,
    uniform: np.ndarray,
    num_gt: np.ndarray,
    max_dets: np.ndarray,
    rec_thr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval.accumulate over every category, area range and max-detections setting.

    status ``(N, A, T)`` from ``match_groups_status``; det_rank ``(N,)`` is a detection's rank inside its
    (image, category) group; categories own contiguous ranges ``cat_det_start[k]:cat_det_end[k]``;
    num_gt ``(K, A)`` counts non-ignored GT; uniform ``(N, A)`` a detection's code when it is the
    same at every threshold (else -1): such rows update one counter per area instead of T.
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
    u_fp = np.empty(n_area, dtype=np.int64)
    c_min = np.empty(n_rec, dtype=np.int64)
    done_n = np.empty(n_m, dtype=np.int64)
    top = 0
    for m in range(n_m):
        top = max(top, max_dets[m])
    for k in range(n_cat):
        c0 = cat_det_start[k]
        c1 = cat_det_end[k]
        any_gt = False
        for a in range(n_area):
            if num_gt[k, a] > 0:
                any_gt = True
        if not any_gt:
            continue
        # One stable score sort of the detections kept at the largest max-dets; each setting keeps
        # the ones of rank < max_dets[m] in that order (= a stable sort of exactly those).
        sel = np.empty(c1 - c0, dtype=np.int64)
        n_all = 0
        for i in range(c0, c1):
            if det_rank[i] < top:
                sel[n_all] = i
                n_all += 1
        neg = np.empty(n_all)
        for i in range(n_all):
            neg[i] = -det_score[sel[i]]
        order_all = sel[:n_all][np.argsort(neg, kind="mergesort")]
        for m in range(n_m):
            order = np.empty(n_all, dtype=np.int64)
            n = 0
            for i in range(n_all):
                if det_rank[order_all[i]] < max_dets[m]:
                    order[n] = order_all[i]
                    n += 1
            done_n[m] = n
            same = -1
            for m2 in range(m):
                if done_n[m2] == n:  # kept sets are nested: same size = same detections
                    same = m2
            if same >= 0:
                for t in range(n_thr):
                    for a in range(n_area):
                        recall[t, k, a, m] = recall[t, k, a, same]
                        for ri in range(n_rec):
                            precision[t, ri, k, a, m] = precision[t, ri, k, a, same]
                            scores[t, ri, k, a, m] = scores[t, ri, k, a, same]
                continue
            n_tp[:] = 0
            n_fp[:] = 0  # FPs counted per threshold, plus u_fp[a] counted for all thresholds at once
            u_fp[:] = 0
            for i in range(n):
                j = order[i]
                row = status[j]
                for a in range(n_area):
                    if num_gt[k, a] == 0:
                        continue
                    u = uniform[j, a]
                    if u == FP:
                        u_fp[a] += 1
                        continue
                    if u == IGNORED:
                        continue
                    for t in range(n_thr):
                        code = row[a, t]
                        if code == FP:
                            n_fp[a, t] += 1
                        elif code == TP:
                            c = n_tp[a, t] + 1
                            n_tp[a, t] = c
                            tps = float(c)
                            ev_pr[a, t, c - 1] = tps / (float(n_fp[a, t] + u_fp[a]) + tps + _EPS)
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
                d_iou[t, o] = iou_pair(det_box, i, gt_box, j, gt_crowd[j])
    for j in range(gt_input.shape[0]):
        o = gt_input[j]
        g_eval[o] = True
        g_ign[o] = gt_ignore0[j]
        g_best[o] = gt_best_iou[j]
        for t in range(n_thr):
            if gt_match[t, j] >= 0:
                g_match[t, o] = det_input[gt_match[t, j]]
    return d_eval, d_match, d_ign, d_best, d_best_gt, d_iou, g_eval, g_match, g_ign, g_best
