"""Numba kernel that writes the ``per_image`` object of the COCO report as JSON text (``coco_report``).

``per_image_json(...) -> (n,) uint8``: the text of ``{"<image id>": {"tp": .., "fp": .., "fn": ..,
"ignored": .., "per_class": {"<category id>": {"tp": .., "fp": .., "fn": ..}, ..}, "matches": [{"det":
.., "gt": .., "category_id": .., "iou": <text>}, ..]}, ..}`` from integer columns; the IoU numbers come
already formatted (one JSON array of floats, ``iou_text``), so the floats are written exactly as orjson
writes them. Building the same object as Python dicts costs ~10x more (one dict per entry).
"""

from __future__ import annotations

import numba
import numpy as np


def _lit(s: str) -> np.ndarray:
    return np.frombuffer(s.encode(), dtype=np.uint8).copy()


_IMG_TP = _lit('":{"tp":')
_FP = _lit(',"fp":')
_FN = _lit(',"fn":')
_IGN = _lit(',"ignored":')
_PER_CLASS = _lit(',"per_class":{')
_CLS_TP = _lit('":{"tp":')
_MATCHES = _lit('},"matches":[')
_DET = _lit('{"det":')
_GT = _lit(',"gt":')
_CAT = _lit(',"category_id":')
_IOU = _lit(',"iou":')


@numba.njit(cache=True, nogil=True)
def _put(out: np.ndarray, p: int, lit: np.ndarray) -> int:
    for i in range(lit.shape[0]):
        out[p + i] = lit[i]
    return p + lit.shape[0]


@numba.njit(cache=True, nogil=True)
def _put_int(out: np.ndarray, p: int, v: int) -> int:
    if v < 0:
        out[p] = 45  # '-'
        p += 1
        v = -v
    n = 1
    x = v // 10
    while x > 0:
        n += 1
        x //= 10
    q = p + n
    while True:
        q -= 1
        out[q] = 48 + v % 10
        v //= 10
        if q == p:
            break
    return p + n


@numba.njit(cache=True, nogil=True)
def per_image_json(
    image_ids: np.ndarray,
    totals: np.ndarray,
    bounds: np.ndarray,
    cls_cat: np.ndarray,
    cls_counts: np.ndarray,
    mbounds: np.ndarray,
    m_cols: np.ndarray,
    iou_text: np.ndarray,
) -> np.ndarray:
    """The ``per_image`` JSON object. I images, P (image, category) entries, Q matches.

    image_ids ``(I,)``; totals ``(I, 4)`` tp/fp/fn/ignored; entries of image i are
    ``bounds[i]:bounds[i + 1]`` of cls_cat ``(P,)`` / cls_counts ``(P, 3)`` tp/fp/fn; its matches
    ``mbounds[i]:mbounds[i + 1]`` of m_cols ``(Q, 3)`` det/gt/category_id and of the Q numbers of
    iou_text (``[v0,v1,..]`` as uint8, no spaces).
    """
    n_img = image_ids.shape[0]
    n_cls = cls_cat.shape[0]
    n_m = m_cols.shape[0]
    cap = 2 + n_img * 200 + n_cls * 110 + n_m * 110 + iou_text.shape[0]
    out = np.empty(cap, dtype=np.uint8)
    # Start of each IoU number inside iou_text (after '[' or ',').
    starts = np.empty(n_m + 1, dtype=np.int64)
    k = 0
    for i in range(iou_text.shape[0]):
        c = iou_text[i]
        if c == 91 or c == 44:  # '[' or ','
            starts[k] = i + 1
            k += 1
    starts[n_m] = iou_text.shape[0]  # the last number ends before ']'
    p = 0
    out[p] = 123  # '{'
    p += 1
    for i in range(n_img):
        if i > 0:
            out[p] = 44
            p += 1
        out[p] = 34  # '"'
        p += 1
        p = _put_int(out, p, image_ids[i])
        p = _put(out, p, _IMG_TP)
        p = _put_int(out, p, totals[i, 0])
        p = _put(out, p, _FP)
        p = _put_int(out, p, totals[i, 1])
        p = _put(out, p, _FN)
        p = _put_int(out, p, totals[i, 2])
        p = _put(out, p, _IGN)
        p = _put_int(out, p, totals[i, 3])
        p = _put(out, p, _PER_CLASS)
        for e in range(bounds[i], bounds[i + 1]):
            if e > bounds[i]:
                out[p] = 44
                p += 1
            out[p] = 34
            p += 1
            p = _put_int(out, p, cls_cat[e])
            p = _put(out, p, _CLS_TP)
            p = _put_int(out, p, cls_counts[e, 0])
            p = _put(out, p, _FP)
            p = _put_int(out, p, cls_counts[e, 1])
            p = _put(out, p, _FN)
            p = _put_int(out, p, cls_counts[e, 2])
            out[p] = 125  # '}'
            p += 1
        p = _put(out, p, _MATCHES)
        for q in range(mbounds[i], mbounds[i + 1]):
            if q > mbounds[i]:
                out[p] = 44
                p += 1
            p = _put(out, p, _DET)
            p = _put_int(out, p, m_cols[q, 0])
            p = _put(out, p, _GT)
            p = _put_int(out, p, m_cols[q, 1])
            p = _put(out, p, _CAT)
            p = _put_int(out, p, m_cols[q, 2])
            p = _put(out, p, _IOU)
            for b in range(starts[q], starts[q + 1] - 1):
                out[p] = iou_text[b]
                p += 1
            out[p] = 125
            p += 1
        out[p] = 93  # ']'
        out[p + 1] = 125
        p += 2
    out[p] = 125
    p += 1
    return out[:p].copy()
