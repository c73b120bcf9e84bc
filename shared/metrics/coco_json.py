"""Fast path for COCO detection-result JSON: bytes -> columns, without a Python object per detection.

The scanner itself is ``coco_json_kernels.scan`` (numba; compiled ahead of time when built, see
``coco_native``).

``parse_results(data: bytes) -> ResultColumns | None`` reads a top-level JSON array of objects with
``image_id`` (int), ``category_id`` (int), ``bbox`` (4 numbers) and ``score`` (number); other keys are
skipped whatever their value. It returns ``None`` for anything else (another shape, a missing key, a
non-integer id, malformed JSON): the caller then parses with orjson, which gives the proper errors.

Numbers are exact (the same double as Python's ``float``): Clinger's fast path (at most 19
significant digits, mantissa <= 2**53, decimal exponent within +-22: one correctly rounded
multiplication or division of exact doubles); any other number is handed back to ``float()``.
"""

from __future__ import annotations

import mmap
import re
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.metrics.coco_native import kernels
from shared.metrics.coco_params import SCAN_AT_SPLIT, SCAN_DONE, SCAN_MISSED_SPLIT, SCAN_OBJECT_BYTES

__all__ = ["ResultColumns", "parse_results"]

_POW10 = np.array([10.0**i for i in range(23)])
# Where two objects of the list meet, if that is not inside a string: the guess that splits a big file.
_BETWEEN_OBJECTS = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")


@dataclass(frozen=True)
class ResultColumns:
    """image_id ``(N,)`` int64, category_id ``(N,)`` int64, bbox ``(N, 4)`` float64, score ``(N,)``."""

    image_id: NDArray[np.int64]
    category_id: NDArray[np.int64]
    bbox: NDArray[np.float64]
    score: NDArray[np.float64]


def parse_results(
    data: bytes | mmap.mmap, *, pool: Executor | None = None, min_split: int = 8 << 20
) -> ResultColumns | None:
    """Columns of a COCO result list (the file's bytes, or the file mapped), or ``None`` when the fast
    path does not apply.

    With ``pool`` and at least ``min_split`` bytes, the second half is scanned there while this thread
    scans the first: the halves meet at an object boundary found near the middle (``},{``), which the
    first half's scan confirms (it parses from the start, so it knows where objects really begin); when
    the guess was inside a string, the whole is scanned again in one pass. Same result either way.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    kern = kernels()
    found = None if pool is None or len(buf) < min_split else _BETWEEN_OBJECTS.search(data, len(buf) // 2)
    if found is None or pool is None:
        ok, _n, ids, vals, slow = kern.scan(buf, _POW10)
        if not ok:
            return None
        return _columns(data, ids, vals, [slow])
    split = found.end() - 1  # the '{' after the comma
    cap = len(buf) // SCAN_OBJECT_BYTES + 1
    ids = np.empty((cap, 2), dtype=np.int64)
    vals = np.empty((cap, 5))
    row_b = split // SCAN_OBJECT_BYTES + 1  # more rows than the first part can have
    second = pool.submit(kern.scan_part, buf, _POW10, split, -1, ids, vals, row_b, cap)
    first = kern.scan_part(buf, _POW10, 0, split, ids, vals, 0, row_b)
    status_b, n_b, slow_b = second.result()
    status_a, n_a, slow_a = first
    if status_a == SCAN_MISSED_SPLIT:
        return parse_results(data)
    if status_a != SCAN_AT_SPLIT or status_b != SCAN_DONE:
        return None
    _fix_slow(data, vals, [slow_a, slow_b])
    a, b = slice(0, n_a), slice(row_b, row_b + n_b)
    return ResultColumns(
        image_id=np.concatenate((ids[a, 0], ids[b, 0])),
        category_id=np.concatenate((ids[a, 1], ids[b, 1])),
        bbox=np.concatenate((vals[a, :4], vals[b, :4])),
        score=np.concatenate((vals[a, 4], vals[b, 4])),
    )


def _fix_slow(data: bytes | mmap.mmap, vals: NDArray[np.float64], slow: list[NDArray[np.int64]]) -> None:
    """Numbers outside the exact fast path, through ``float()`` (slots are row * 5 + field of ``vals``)."""
    flat = vals.reshape(-1)
    for part in slow:
        for slot, a, b in part.tolist():
            flat[slot] = float(data[a:b])


def _columns(
    data: bytes | mmap.mmap, ids: NDArray[np.int64], vals: NDArray[np.float64], slow: list[NDArray[np.int64]]
) -> ResultColumns:
    _fix_slow(data, vals, slow)
    return ResultColumns(
        image_id=ids[:, 0].copy(),
        category_id=ids[:, 1].copy(),
        bbox=np.ascontiguousarray(vals[:, :4]),
        score=vals[:, 4].copy(),
    )
