"""The JSON report of a COCO evaluation (what ``blindspot eval coco`` writes); pure, no I/O.

``coco_report(result, per_image=False) -> dict``; ``coco_report_json(...) -> bytes``, the same value as
JSON text (what the CLI writes; faster); ``evaluate_report(flat, per_image=, pool=)`` evaluates and writes
it in one go, on two threads when given a pool.

Shape (pycocotools conventions: -1 where a number is undefined)::

    {"mAP": .., "AP50": .., "AP75": .., "AP_small": .., "AP_medium": .., "AP_large": ..,
     "AR1": .., "AR10": .., "AR100": .., "AR_small": .., "AR_medium": .., "AR_large": ..,
     "per_class": {"<category id>": {"AP": .., "AP50": .., "AP75": .., "num_gt": ..}},
     "per_image": {"<image id>": {"tp": .., "fp": .., "fn": .., "ignored": ..,
                                  "per_class": {"<category id>": {"tp": .., "fp": .., "fn": ..}},
                                  "matches": [{"det": <index in the detections list>,
                                               "gt": <annotation id>, "category_id": ..,
                                               "iou": ..}]}}}

``per_image`` (only when asked) is at IoU 0.5, area "all", the top 100 detections per image and
category: a TP is a detection matched to a non-crowd GT, a FP an unmatched detection, a FN a
non-crowd GT left unmatched; ``ignored`` counts detections matched to a crowd GT or past the 100.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from shared.metrics.coco_input import FlatCoco
from shared.metrics.coco_native import kernels
from shared.metrics.coco_params import COCO_MAX_DETS, FP, STAT_KEYS, TP
from shared.metrics.coco_result import CocoResult, accumulate_flat, match_flat

__all__ = ["coco_report", "coco_report_json", "evaluate_report"]


def _num(v: float | None) -> float:
    return -1.0 if v is None else float(v)


def coco_report(result: CocoResult, *, per_image: bool = False) -> dict[str, Any]:
    """Build the report dict of ``result`` (see module docstring)."""
    out: dict[str, Any] = {k: _num(result.stats[k]) for k in STAT_KEYS}
    out["per_class"] = {
        str(cid): {"AP": _num(cs.ap), "AP50": _num(cs.ap50), "AP75": _num(cs.ap75), "num_gt": cs.num_gt}
        for cid, cs in result.per_class.items()
    }
    if per_image:
        out["per_image"] = _per_image(result)
    return out


@dataclass(frozen=True)
class _PerImage:
    """Columns of ``per_image``. I images, P (image, category) entries, Q matches (see the kernel)."""

    image_ids: NDArray[np.int64]  # (I,)
    totals: NDArray[np.int64]  # (I, 4) tp, fp, fn, ignored
    bounds: NDArray[np.int64]  # (I + 1,) entries of image i: bounds[i]:bounds[i + 1]
    cls_cat: NDArray[np.int64]  # (P,)
    cls_counts: NDArray[np.int64]  # (P, 3) tp, fp, fn
    mbounds: NDArray[np.int64]  # (I + 1,)
    m_cols: NDArray[np.int64]  # (Q, 3) det, gt id, category id
    m_iou: NDArray[np.float64]  # (Q,)


def _per_image_columns(flat: FlatCoco, raw: tuple[np.ndarray, ...]) -> _PerImage:
    """The columns, read from the matching's own arrays (sorted order: (category, image), then score).

    The same numbers as ``result.image_counts(0)`` and ``result.matches`` at IoU 0.5 (a test checks
    it), without scattering all T thresholds of every object back to input order (~85 MB and ~0.1 s
    for 500k detections) when only the first is reported.
    """
    status, dt_match, gt_match, gt_ignore = raw[:4]
    n_img, n_groups = len(flat.image_ids), len(flat.group_cat)
    code = status[:, 0, 0]  # area "all", IoU 0.5; detections past max-dets are IGNORED
    tp, fp = code == TP, code == FP
    fn = (gt_match[0] < 0) & ~gt_ignore[0]

    def per_group(
        flags: NDArray[np.bool_], start: NDArray[np.int64], end: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        c = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, out=c[1:])
        return c[end] - c[start]

    g_tp, g_fp = per_group(tp, flat.det_start, flat.det_end), per_group(fp, flat.det_start, flat.det_end)
    g_fn = per_group(fn, flat.gt_start, flat.gt_end)
    g_ign = flat.det_end - flat.det_start - g_tp - g_fp  # matched to a crowd GT, or past max-dets
    by_img = np.lexsort((flat.group_cat, flat.group_img)) if n_groups else np.zeros(0, dtype=np.int64)
    bounds = np.searchsorted(flat.group_img[by_img], np.arange(n_img + 1)).astype(np.int64)
    totals = np.stack(
        [np.bincount(flat.group_img, weights=w, minlength=n_img) for w in (g_tp, g_fp, g_fn, g_ign)], axis=1
    ).astype(np.int64)  # counts: exact in float64
    # True positives at IoU 0.5 by image, each image's by index in the detection list.
    i_tp = np.flatnonzero(tp)
    det_in = flat.det_input[i_tp]
    i_tp = i_tp[np.argsort(flat.det_img[i_tp] * max(flat.n_det_input, 1) + det_in)]
    det_in, j = flat.det_input[i_tp], dt_match[0, i_tp]
    mbounds = np.searchsorted(flat.det_img[i_tp], np.arange(n_img + 1)).astype(np.int64)
    m_cols = np.stack([det_in, flat.gt_id[j], flat.category_ids[flat.det_cat[i_tp]]], axis=1)
    return _PerImage(
        image_ids=np.ascontiguousarray(flat.image_ids, dtype=np.int64),
        totals=totals,
        bounds=bounds,
        cls_cat=np.ascontiguousarray(flat.category_ids[flat.group_cat[by_img]], dtype=np.int64),
        cls_counts=np.ascontiguousarray(np.stack([g_tp[by_img], g_fp[by_img], g_fn[by_img]], axis=1)),
        mbounds=mbounds,
        m_cols=np.ascontiguousarray(m_cols, dtype=np.int64),
        m_iou=_tp_iou(flat.det_box[i_tp], flat.gt_box[j]),
    )


def _tp_iou(d: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    """IoU of matched pairs (non-crowd, overlapping): ``coco_kernels.iou_pair``'s operations, in order."""
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    return inter / (d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - inter)


def _per_image(result: CocoResult) -> dict[str, Any]:
    c = _per_image_columns(result.flat, result.raw)
    bounds, mbounds = c.bounds.tolist(), c.mbounds.tolist()
    cats = list(map(str, c.cls_cat.tolist()))
    entries = [{"tp": a, "fp": b, "fn": f} for a, b, f in c.cls_counts.tolist()]
    matches = [
        {"det": d, "gt": g, "category_id": k, "iou": v}
        for (d, g, k), v in zip(c.m_cols.tolist(), c.m_iou.tolist(), strict=True)
    ]
    return {
        str(img): {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "ignored": ig,
            "per_class": dict(
                zip(cats[bounds[i] : bounds[i + 1]], entries[bounds[i] : bounds[i + 1]], strict=True)
            ),
            "matches": matches[mbounds[i] : mbounds[i + 1]],
        }
        for i, (img, (tp, fp, fn, ig)) in enumerate(zip(c.image_ids.tolist(), c.totals.tolist(), strict=True))
    }


def coco_report_json(result: CocoResult, *, per_image: bool = False) -> bytes:
    """``orjson.dumps(coco_report(result, per_image=per_image))``, the same JSON value, written faster.

    ``per_image`` is written as text by a kernel (``coco_report_kernels.per_image_json``) instead of
    ~10 Python objects per image and category.
    """
    return _join(result, _per_image_json(result.flat, result.raw) if per_image else None)


def evaluate_report(
    flat: FlatCoco,
    *,
    per_image: bool = False,
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
    pool: Executor | None = None,
) -> tuple[CocoResult, bytes]:
    """``evaluate_flat`` and ``coco_report_json`` in one go: the same result and bytes.

    With ``pool``, the matching runs on two threads (``match_flat``) and, with ``per_image``, the
    accumulation runs there while this thread writes ``per_image``, which needs only the matching: the
    kernels release the GIL, so on two cores the two overlap.
    """
    raw = match_flat(flat, max_dets=max_dets, pool=pool)
    if pool is None or not per_image:
        result = accumulate_flat(flat, raw, max_dets=max_dets)
        return result, coco_report_json(result, per_image=per_image)
    job = pool.submit(accumulate_flat, flat, raw, max_dets=max_dets)
    body = _per_image_json(flat, raw)
    result = job.result()
    return result, _join(result, body)


def _per_image_json(flat: FlatCoco, raw: tuple[np.ndarray, ...]) -> bytes:
    c = _per_image_columns(flat, raw)
    iou_text = np.frombuffer(orjson.dumps(c.m_iou.tolist()), dtype=np.uint8)
    body = kernels().per_image_json(
        c.image_ids, c.totals, c.bounds, c.cls_cat, c.cls_counts, c.mbounds, c.m_cols, iou_text
    )
    return bytes(body)


def _join(result: CocoResult, per_image: bytes | None) -> bytes:
    """The report's JSON text: the summary of ``result``, with ``"per_image": <per_image>`` when given."""
    head = orjson.dumps(coco_report(result, per_image=False))
    if per_image is None:
        return head
    return b"".join((head[:-1], b',"per_image":', per_image, b"}"))
