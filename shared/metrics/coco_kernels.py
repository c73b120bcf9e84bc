"""Numba kernels of the COCO engine over flattened arrays (no Python objects, no I/O).

Layout shared by every kernel: detections and ground truth are sorted and grouped by (category,
image) (category major, images in ascending id order); inside a group the detections are in
descending score order (stable: ties keep the input order, like pycocotools' mergesort) and the
ground truth is in input order. Group ``g`` owns detections ``det_start[g]:det_end[g]`` and ground
truth ``gt_start[g]:gt_end[g]``. Indices stored in the outputs are positions in these sorted arrays.

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
    """Match every group at every area range and IoU threshold.

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
    for g in range(det_start.shape[0]):
        d0 = det_start[g]
        d1 = min(det_end[g], d0 + max_det)
        g0 = gt_start[g]
        g1 = gt_end[g]
        nd = d1 - d0
        ng = g1 - g0
        ious = box_iou_block(det_box, d0, d1, gt_box, gt_crowd, g0, g1)
        for i in range(nd):
            for j in range(ng):
                if ious[i, j] > det_best_iou[d0 + i]:
                    det_best_iou[d0 + i] = ious[i, j]
                    det_best_gt[d0 + i] = g0 + j
                if ious[i, j] > gt_best_iou[g0 + j]:
                    gt_best_iou[g0 + j] = ious[i, j]
        dm = np.empty((n_thr, nd), dtype=np.int64)
        di = np.empty((n_thr, nd), dtype=np.bool_)
        gm = np.empty((n_thr, ng), dtype=np.int64)
        gi = np.empty(ng, dtype=np.bool_)
        for a in range(n_area):
            if ng == 0:
                # No GT: nothing matches; unmatched detections outside the range are ignored.
                for i in range(nd):
                    out = det_area[d0 + i] < area_lo[a] or det_area[d0 + i] > area_hi[a]
                    for t in range(n_thr):
                        dt_ignore[a, t, d0 + i] = out
                continue
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
def pr_curve(
    tp: np.ndarray, fp: np.ndarray, scores: np.ndarray, num_gt: int, rec_thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """One COCOeval.accumulate curve from score-sorted flags.

    tp, fp, scores ``(n,)`` in descending score order (ignored detections have both flags False
    but keep their position). Returns precision ``(R,)``, score at each recall point ``(R,)``, recall.
    """
    nd = tp.shape[0]
    n_rec = rec_thr.shape[0]
    rc = np.empty(nd)
    pr = np.empty(nd)
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
    q = np.zeros(n_rec)
    ss = np.zeros(n_rec)
    inds = np.searchsorted(rc, rec_thr)
    for ri in range(n_rec):
        pi = inds[ri]
        if pi >= nd:
            break
        q[ri] = pr[pi]
        ss[ri] = scores[pi]
    recall = rc[nd - 1] if nd > 0 else 0.0
    return q, ss, recall


@numba.njit(cache=True, nogil=True)
def accumulate_all(
    det_score: np.ndarray,
    det_rank: np.ndarray,
    cat_det_start: np.ndarray,
    cat_det_end: np.ndarray,
    dt_match: np.ndarray,
    dt_ignore: np.ndarray,
    num_gt: np.ndarray,
    max_dets: np.ndarray,
    rec_thr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval.accumulate over every category, area range and max-detections setting.

    det_rank ``(N,)`` is a detection's rank inside its (image, category) group; categories own
    contiguous ranges ``cat_det_start[k]:cat_det_end[k]``; num_gt ``(K, A)`` counts non-ignored GT.
    Returns precision ``(T, R, K, A, M)``, recall ``(T, K, A, M)``, scores ``(T, R, K, A, M)``,
    -1 where a category has no non-ignored GT (pycocotools layout; the caller maps -1 to None).
    """
    n_area, n_thr, _ = dt_match.shape
    n_cat = cat_det_start.shape[0]
    n_rec = rec_thr.shape[0]
    n_m = max_dets.shape[0]
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_m))
    recall = -np.ones((n_thr, n_cat, n_area, n_m))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, n_m))
    for k in range(n_cat):
        c0 = cat_det_start[k]
        c1 = cat_det_end[k]
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
            sc = det_score[order]
            tp = np.empty(n, dtype=np.bool_)
            fp = np.empty(n, dtype=np.bool_)
            for a in range(n_area):
                if num_gt[k, a] == 0:
                    continue
                for t in range(n_thr):
                    for i in range(n):
                        j = order[i]
                        ig = dt_ignore[a, t, j]
                        matched = dt_match[a, t, j] >= 0
                        tp[i] = matched and not ig
                        fp[i] = (not matched) and not ig
                    q, ss, rc = pr_curve(tp, fp, sc, num_gt[k, a], rec_thr)
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
                    recall[t, k, a, m] = rc
    return precision, recall, scores
