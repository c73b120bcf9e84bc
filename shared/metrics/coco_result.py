"""Dataset-level COCO evaluation over flattened arrays and its result types.

``evaluate_flat(FlatCoco) -> CocoResult`` runs the numba kernels (matching of every (category,
image) group at every area range and IoU threshold, then accumulation) and summarises exactly like
``COCOeval.summarize``. ``CocoResult`` carries:

- ``stats``: the 12 summary numbers keyed by ``STAT_KEYS`` (``None`` where pycocotools prints -1);
- ``per_class``: ``ClassStats`` per category id (same 12 numbers restricted to one category);
- ``precision`` ``(T, R, K, A, M)``, ``recall`` ``(T, K, A, M)``, ``scores`` ``(T, R, K, A, M)``:
  pycocotools' ``eval`` arrays with NaN instead of -1 (A = ``AREA_NAMES``, M = ``max_dets``);
- ``matches``: ``CocoMatches``, the per-object outcome (area range "all", max dets = the largest);
- ``flat``: the sorted, grouped input arrays (``FlatCoco``) the numbers were computed from;
- ``image_counts(iou_index)``: TP/FP/FN per (image, category) group.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from shared.metrics.coco_input import FlatCoco
from shared.metrics.coco_native import kernels
from shared.metrics.coco_params import (
    AREA_NAMES,
    AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETS,
    COCO_REC_THRESHOLDS,
    SUMMARY,
)

__all__ = [
    "ClassStats",
    "CocoMatches",
    "CocoResult",
    "ImageClassCounts",
    "accumulate_flat",
    "evaluate_flat",
    "match_flat",
]

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class ClassStats:
    """The 12 COCO summary numbers of one category; ``None`` when it has no non-ignored GT in range."""

    category_id: int
    num_gt: int
    stats: dict[str, float | None]

    @property
    def ap(self) -> float | None:
        return self.stats["mAP"]

    @property
    def ap50(self) -> float | None:
        return self.stats["AP50"]

    @property
    def ap75(self) -> float | None:
        return self.stats["AP75"]


@dataclass(frozen=True)
class CocoMatches:
    """Per-object COCO outcome at area range "all" and the largest max-dets; input order.

    Nd = len(dets), Ng = len(gt["annotations"]), T = IoU thresholds.
    det_evaluated ``(Nd,)``: its category is known and it is among the ``max_dets`` best of its
        (image, category); others are neither TP nor FP (and are marked ignored).
    det_matched_gt ``(T, Nd)``: index into ``gt["annotations"]`` or -1.
    det_ignored ``(T, Nd)``: matched to a crowd GT, or not evaluated.
    det_best_iou ``(Nd,)`` / det_best_gt ``(Nd,)``: best IoU with a GT of the same image and category
        (0 / -1 when none overlaps, and for detections not evaluated); det_match_iou ``(T, Nd)`` IoU
        with the matched GT, NaN if none.
    gt_evaluated ``(Ng,)``: its image and category are known.
    gt_matched_det ``(T, Ng)``: index into ``dets`` or -1. gt_ignored ``(Ng,)``: crowd or not evaluated.
    gt_best_iou ``(Ng,)``: best IoU with an evaluated detection of the same image and category.
    """

    det_evaluated: B
    det_matched_gt: I64
    det_ignored: B
    det_best_iou: F64
    det_best_gt: I64
    det_match_iou: F64
    gt_evaluated: B
    gt_matched_det: I64
    gt_ignored: B
    gt_best_iou: F64

    @property
    def det_tp(self) -> B:
        """``(T, Nd)``: true positive at each threshold."""
        return (self.det_matched_gt >= 0) & ~self.det_ignored

    @property
    def det_fp(self) -> B:
        """``(T, Nd)``: false positive at each threshold."""
        return (self.det_matched_gt < 0) & ~self.det_ignored

    @property
    def gt_fn(self) -> B:
        """``(T, Ng)``: missed non-ignored GT at each threshold."""
        return (self.gt_matched_det < 0) & ~self.gt_ignored[None, :]

    @staticmethod
    def _mask(flags: B) -> NDArray[np.int16]:
        weights = (1 << np.arange(flags.shape[0], dtype=np.int64))[:, None]
        return (flags.astype(np.int64) * weights).sum(axis=0).astype(np.int16)

    @property
    def det_tp_mask(self) -> NDArray[np.int16]:
        """``(Nd,)`` bit k set when a TP at threshold k (object_matches.tp_mask)."""
        return self._mask(self.det_tp)

    @property
    def gt_tp_mask(self) -> NDArray[np.int16]:
        """``(Ng,)`` bit k set when matched (by a non-ignored GT's detection) at threshold k."""
        return self._mask((self.gt_matched_det >= 0) & ~self.gt_ignored[None, :])


@dataclass(frozen=True)
class ImageClassCounts:
    """TP/FP/FN per (image, category) group with a detection or a GT; all arrays ``(P,)``.

    ignored = evaluated detections matched to a crowd GT plus detections past max-dets.
    """

    image_id: I64
    category_id: I64
    tp: I64
    fp: I64
    fn: I64
    ignored: I64


@dataclass(frozen=True)
class CocoResult:
    """See the module docstring; ``matches`` is computed on first access (it is ~10 arrays of N x T)."""

    stats: dict[str, float | None]
    per_class: dict[int, ClassStats]
    image_ids: I64
    category_ids: I64
    max_dets: tuple[int, ...]
    precision: F64
    recall: F64
    scores: F64
    flat: FlatCoco = field(repr=False)
    raw: tuple[np.ndarray, ...] = field(repr=False)

    @cached_property
    def matches(self) -> CocoMatches:
        """Per-object outcome in input order (``CocoMatches``)."""
        return _to_input_order(self.flat, self.raw, int(max(self.max_dets)))

    def image_counts(self, iou_index: int = 0) -> ImageClassCounts:
        """TP/FP/FN per (image, category) at ``COCO_IOU_THRESHOLDS[iou_index]`` (area "all")."""
        f, m = self.flat, self.matches
        n_groups = len(f.group_cat)
        det_group = np.repeat(np.arange(n_groups), f.det_end - f.det_start)
        gt_group = np.repeat(np.arange(n_groups), f.gt_end - f.gt_start)
        matched = m.det_matched_gt[iou_index] >= 0  # one threshold's row, not det_tp's (T, Nd)
        counted = ~m.det_ignored[iou_index]
        tp = (matched & counted)[f.det_input]
        fp = (~matched & counted)[f.det_input]
        fn = ((m.gt_matched_det[iou_index] < 0) & ~m.gt_ignored)[f.gt_input]
        return ImageClassCounts(
            image_id=f.image_ids[f.group_img] if n_groups else np.zeros(0, dtype=np.int64),
            category_id=f.category_ids[f.group_cat] if n_groups else np.zeros(0, dtype=np.int64),
            tp=np.bincount(det_group[tp], minlength=n_groups).astype(np.int64),
            fp=np.bincount(det_group[fp], minlength=n_groups).astype(np.int64),
            fn=np.bincount(gt_group[fn], minlength=n_groups).astype(np.int64),
            ignored=np.bincount(det_group[~tp & ~fp], minlength=n_groups).astype(np.int64),
        )


def _summarize(
    precision: F64, recall: F64, max_dets: tuple[int, ...], k: int | None = None
) -> dict[str, float | None]:
    """COCOeval.summarize on the -1-filled arrays; ``k`` restricts to one category index."""
    out: dict[str, float | None] = {}
    for key, is_ap, iou_thr, area, md in SUMMARY:
        aind = [i for i, name in enumerate(AREA_NAMES) if name == area]
        mind = [i for i, m in enumerate(max_dets) if m == md]
        s = precision if is_ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == COCO_IOU_THRESHOLDS)[0]]
        if k is not None:
            s = s[..., k : k + 1, :, :]
        s = s[..., aind, :][..., mind] if aind and mind else s[..., :0, :][..., :0]
        valid = s[s > -1]
        out[key] = float(np.mean(valid)) if len(valid) else None
    return out


def _summarize_classes(
    precision: F64, recall: F64, max_dets: tuple[int, ...]
) -> list[dict[str, float | None]]:
    """``_summarize(..., k)`` for every category index k at once (same numbers, bit for bit).

    A category's slice of one summary entry is all -1 (no GT in range) or all valid, so its value is
    the mean of one contiguous row: ``np.mean(axis=1)`` sums each row exactly like ``np.mean`` of it.
    """
    n_cat = precision.shape[2]
    cols: dict[str, list[float | None]] = {}
    for key, is_ap, iou_thr, area, md in SUMMARY:
        aind = [i for i, name in enumerate(AREA_NAMES) if name == area]
        mind = [i for i, m in enumerate(max_dets) if m == md]
        if not aind or not mind:
            cols[key] = [None] * n_cat
            continue
        s = precision if is_ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == COCO_IOU_THRESHOLDS)[0]]
        sub = s[..., aind[0], mind[0]]  # (T', R, K) or (T', K)
        rows = np.ascontiguousarray(np.moveaxis(sub, -1, 0).reshape(n_cat, -1))
        n_valid = (rows > -1).sum(axis=1)
        means = rows.mean(axis=1) if rows.shape[1] else np.zeros(n_cat)
        col: list[float | None] = []
        for k in range(n_cat):
            if n_valid[k] == rows.shape[1] and n_valid[k] > 0:
                col.append(float(means[k]))
            elif n_valid[k] == 0:
                col.append(None)
            else:  # partly undefined: never produced by accumulate, kept exact anyway
                col.append(_summarize(precision, recall, max_dets, k)[key])
        cols[key] = col
    return [{key: cols[key][k] for key in cols} for k in range(n_cat)]


def _to_input_order(flat: FlatCoco, raw: tuple[np.ndarray, ...], top: int) -> CocoMatches:
    status, dt_match, gt_match, gt_ignore, det_best_iou, det_best_gt, gt_best_iou = raw[:7]
    out = kernels().to_input_order(
        flat.n_det_input,
        flat.n_gt_input,
        flat.det_input,
        flat.gt_input,
        flat.det_rank,
        top,
        status[:, 0, :],
        dt_match,
        gt_match,
        gt_ignore[0],
        det_best_iou,
        det_best_gt,
        gt_best_iou,
        flat.det_box,
        flat.gt_box,
        flat.gt_crowd,
    )
    return CocoMatches(*out)


def evaluate_flat(flat: FlatCoco, *, max_dets: tuple[int, ...] = COCO_MAX_DETS) -> CocoResult:
    """Match, accumulate and summarise a flattened dataset (see module docstring)."""
    return accumulate_flat(flat, match_flat(flat, max_dets=max_dets), max_dets=max_dets)


def match_flat(
    flat: FlatCoco,
    *,
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
    pool: Executor | None = None,
    min_split: int = 20_000,
) -> tuple[np.ndarray, ...]:
    """The matching of every group at every area range and threshold (``match_groups_status``' arrays:
    what ``CocoResult.raw`` holds); the first half of ``evaluate_flat``.

    With ``pool``, a dataset of ``min_split`` detections or more (fewer are not worth a thread hand-off)
    has its groups split in two halves of about as many detections, one matched there while this thread
    matches the other (into the same arrays: the groups' ranges are disjoint).
    """
    if not max_dets:
        raise ValueError("max_dets needs at least one value")
    top = int(max(max_dets))
    area_lo = np.array([AREA_RANGES[a][0] for a in AREA_NAMES])
    area_hi = np.array([AREA_RANGES[a][1] for a in AREA_NAMES])
    args = (
        flat.det_box,
        flat.det_area,
        flat.gt_box,
        flat.gt_area,
        flat.gt_crowd,
        flat.det_start,
        flat.det_end,
        flat.gt_start,
        flat.gt_end,
        COCO_IOU_THRESHOLDS,
        area_lo,
        area_hi,
        top,
    )
    kern = kernels()
    n_det, n_gt, n_groups = len(flat.det_box), len(flat.gt_box), len(flat.det_start)
    if pool is None or n_det < min_split or n_groups < 2:
        return tuple(kern.match_groups_status(*args))
    out = tuple(kern.match_outputs(n_det, n_gt, len(AREA_NAMES), len(COCO_IOU_THRESHOLDS)))
    mid = int(np.clip(np.searchsorted(flat.det_start, n_det // 2), 1, n_groups - 1))
    job = pool.submit(kern.match_groups_status_into, *args, 0, mid, *out)
    kern.match_groups_status_into(*args, mid, n_groups, *out)
    job.result()
    return out


def accumulate_flat(
    flat: FlatCoco, raw: tuple[np.ndarray, ...], *, max_dets: tuple[int, ...] = COCO_MAX_DETS
) -> CocoResult:
    """Accumulate and summarise ``match_flat``'s arrays (the second half of ``evaluate_flat``)."""
    kern = kernels()
    status, gt_ignore = raw[0], raw[3]
    n_cat = len(flat.category_ids)
    num_gt = np.stack(
        [np.bincount(flat.gt_cat[~gt_ignore[a]], minlength=n_cat) for a in range(len(AREA_NAMES))], axis=1
    ).astype(np.int64)
    precision, recall, scores = kern.accumulate_all_uniform(
        flat.det_score,
        flat.det_rank,
        flat.cat_det_start,
        flat.cat_det_end,
        status,
        raw[7],
        num_gt.reshape(n_cat, len(AREA_NAMES)),
        np.asarray(max_dets, dtype=np.int64),
        COCO_REC_THRESHOLDS,
    )
    stats = _summarize(precision, recall, max_dets)
    class_stats = _summarize_classes(precision, recall, max_dets)
    per_class = {
        cid: ClassStats(cid, n, class_stats[k])
        for k, (cid, n) in enumerate(zip(flat.category_ids.tolist(), num_gt[:, 0].tolist(), strict=True))
    }
    nan = np.nan
    return CocoResult(
        stats=stats,
        per_class=per_class,
        image_ids=flat.image_ids,
        category_ids=flat.category_ids,
        max_dets=tuple(max_dets),
        precision=np.where(precision == -1, nan, precision),
        recall=np.where(recall == -1, nan, recall),
        scores=np.where(scores == -1, nan, scores),
        flat=flat,
        raw=raw,
    )
