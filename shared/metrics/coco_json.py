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
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.metrics.coco_native import kernels

__all__ = ["ResultColumns", "parse_results"]

_POW10 = np.array([10.0**i for i in range(23)])


@dataclass(frozen=True)
class ResultColumns:
    """image_id ``(N,)`` int64, category_id ``(N,)`` int64, bbox ``(N, 4)`` float64, score ``(N,)``."""

    image_id: NDArray[np.int64]
    category_id: NDArray[np.int64]
    bbox: NDArray[np.float64]
    score: NDArray[np.float64]


def parse_results(data: bytes | mmap.mmap) -> ResultColumns | None:
    """Columns of a COCO result list (the file's bytes, or the file mapped), or ``None`` when the fast
    path does not apply."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ok, _n, ids, vals, slow = kernels().scan(buf, _POW10)
    if not ok:
        return None
    if len(slow):
        flat = vals.reshape(-1)
        for slot, a, b in slow.tolist():
            flat[slot] = float(data[a:b])
    return ResultColumns(
        image_id=ids[:, 0].copy(),
        category_id=ids[:, 1].copy(),
        bbox=np.ascontiguousarray(vals[:, :4]),
        score=vals[:, 4].copy(),
    )
