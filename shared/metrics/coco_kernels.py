"""Numba kernels of the COCO engine over flattened arrays (no Python objects, no I/O).

Layout shared by every kernel: detections and ground truth are sorted and grouped by (category,
image) (category major, images in ascending id order); inside a group the detections are in
descending score order (stable: ties keep the input order, like pycocotools' mergesort) and the
ground truth is in input order. Group ``g`` owns detections ``det_start[g]:det_end[g]`` and ground
truth ``gt_start[g]:gt_end[g]``. Indices stored in the outputs are positions in these sorted arrays.

Kernels: ``match_groups`` (full per-area outputs; ``shared.metrics.rows`` relies on its contract),
``match_groups_status`` (compact TP/FP/ignored codes for ``coco_accumulate``; services/metrics uses
the same layout),
``match_block`` (one group), ``box_iou_block``, and the grouping helpers ``order_detections``,
``sort_runs_by_score`` and ``merge_groups`` used by ``coco_input``. Accumulation lives in ``coco_accumulate``.

Exactness: every float operation mirrors pycocotools (``maskApi.c`` ``bbIou``, ``evaluateImg``,
``accumulate``) in the same order, so results are bit-identical, not merely close.
"""

from __future__ import annotations

import numba
import numpy as np

from shared.metrics.coco_params import FP, IGNORED, TP  # the status codes (numba reads them as constants)

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
def iou_pair(det_box: np.ndarray, i: int, gt_box: np.ndarray, j: int, crowd: bool) -> float:
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match every group at every area range and IoU threshold (compact output for accumulation).

    Returns (N = detections, M = ground truth, A = area ranges, T = thresholds):
    status ``(N, A, T)`` int8: TP (1), FP (2) or IGNORED (0: matched to an ignored GT, unmatched with
    its area outside the range, or past ``max_det``); a detection's codes are contiguous;
    dt_match ``(T, N)`` int64 sorted GT index or -1 at area range 0 ("all");
    gt_match ``(T, M)`` int64 sorted det index or -1 at area range 0; gt_ignore ``(A, M)`` bool;
    det_best_iou ``(N,)`` best IoU with any GT of the group (0 if none), det_best_gt ``(N,)`` its
    index or -1; gt_best_iou ``(M,)`` best IoU with any kept detection; uniform ``(N, A)`` int8:
    the detection's code when it is the same at every threshold of that area range, else -1.
    """
    out = match_outputs(det_box.shape[0], gt_box.shape[0], area_lo.shape[0], iou_thr.shape[0])
    status, dt_match, gt_match, gt_ignore, det_best_iou, det_best_gt, gt_best_iou, uniform = out
    match_groups_status_into(
        det_box,
        det_area,
        gt_box,
        gt_area,
        gt_crowd,
        det_start,
        det_end,
        gt_start,
        gt_end,
        iou_thr,
        area_lo,
        area_hi,
        max_det,
        0,
        det_start.shape[0],
        status,
        dt_match,
        gt_match,
        gt_ignore,
        det_best_iou,
        det_best_gt,
        gt_best_iou,
        uniform,
    )
    return out


@numba.njit(cache=True, nogil=True)
def match_outputs(
    n_det: int, n_gt: int, n_area: int, n_thr: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``match_groups_status``' eight output arrays, initialised for ``match_groups_status_into``."""
    return (
        np.zeros((n_det, n_area, n_thr), dtype=np.int8),  # status
        np.full((n_thr, n_det), -1, dtype=np.int64),  # dt_match
        np.full((n_thr, n_gt), -1, dtype=np.int64),  # gt_match
        np.zeros((n_area, n_gt), dtype=np.bool_),  # gt_ignore
        np.zeros(n_det),  # det_best_iou
        np.full(n_det, -1, dtype=np.int64),  # det_best_gt
        np.zeros(n_gt),  # gt_best_iou
        np.zeros((n_det, n_area), dtype=np.int8),  # uniform
    )


@numba.njit(cache=True, nogil=True)
def match_groups_status_into(
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
    group_lo: int,
    group_hi: int,
    status: np.ndarray,
    dt_match: np.ndarray,
    gt_match: np.ndarray,
    gt_ignore: np.ndarray,
    det_best_iou: np.ndarray,
    det_best_gt: np.ndarray,
    gt_best_iou: np.ndarray,
    uniform: np.ndarray,
) -> None:
    """``match_groups_status`` for groups ``group_lo:group_hi`` only, into its output arrays (``match_outputs``).

    Groups own disjoint detection and GT ranges, so calls on disjoint group ranges may run at once
    (threads: the kernel releases the GIL) on the same arrays.
    """
    n_area = area_lo.shape[0]
    n_thr = iou_thr.shape[0]
    max_nd = 0
    max_ng = 0
    for g in range(group_lo, group_hi):
        max_nd = max(max_nd, min(det_end[g] - det_start[g], max_det))
        max_ng = max(max_ng, gt_end[g] - gt_start[g])
    ious_buf = np.zeros((max_nd, max_ng))
    dm_buf = np.empty((n_thr, max_nd), dtype=np.int64)
    di_buf = np.empty((n_thr, max_nd), dtype=np.bool_)
    gm_buf = np.empty((n_thr, max_ng), dtype=np.int64)
    gi_buf = np.empty(max_ng, dtype=np.bool_)
    for g in range(group_lo, group_hi):
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
                    uniform[i, a] = code
                    for t in range(n_thr):
                        status[i, a, t] = code
            continue
        ious = ious_buf[:nd, :ng]
        for i in range(nd):
            for j in range(ng):
                v = iou_pair(det_box, d0 + i, gt_box, g0 + j, gt_crowd[g0 + j])
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
            for i in range(nd):
                first = IGNORED
                mixed = False
                for t in range(n_thr):
                    if di[t, i]:
                        code = IGNORED
                    elif dm[t, i] >= 0:
                        code = TP
                    else:
                        code = FP
                    status[d0 + i, a, t] = code
                    if t == 0:
                        first = code
                    elif code != first:
                        mixed = True
                uniform[d0 + i, a] = -1 if mixed else first
            if a == 0:
                for t in range(n_thr):
                    for i in range(nd):
                        if dm[t, i] >= 0:
                            dt_match[t, d0 + i] = g0 + dm[t, i]
                    for j in range(ng):
                        if gm[t, j] >= 0:
                            gt_match[t, g0 + j] = d0 + gm[t, j]


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
                v = iou_pair(det_box, d0 + i, gt_box, g0 + j, gt_crowd[g0 + j])
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
def order_detections(key: np.ndarray, keep: np.ndarray, neg_score: np.ndarray, n_keys: int) -> np.ndarray:
    """Indices ``i`` with ``keep[i]`` stably sorted by ``key`` (``0 <= key < n_keys``), then each run of
    equal keys stably by ``neg_score``: a counting sort (O(N + n_keys)) + ``sort_runs_by_score``."""
    counts = np.zeros(n_keys + 1, dtype=np.int64)
    n = 0
    for i in range(key.shape[0]):
        if keep[i]:
            counts[key[i] + 1] += 1
            n += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    order = np.empty(n, dtype=np.int64)
    for i in range(key.shape[0]):
        if keep[i]:
            k = key[i]
            order[counts[k]] = i
            counts[k] += 1
    sort_runs_by_score(order, key, neg_score)
    return order


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
