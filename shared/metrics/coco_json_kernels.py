"""Numba kernels of the COCO result-JSON fast path (``coco_json.parse_results``): bytes -> columns.

``scan(buf (n,) uint8, pow10 (23,)) -> (ok, n, ids (n, 2), values (n, 5), slow (k, 3))``: ids =
[image_id, category_id], values = [x, y, w, h, score], slow = [slot, start, end] of numbers that need
``float()`` (slot = object * 5 + field). Number rules: see ``coco_json``.
"""

from __future__ import annotations

import numba
import numpy as np

from shared.metrics.coco_params import (
    SCAN_AT_SPLIT,
    SCAN_DONE,
    SCAN_FAIL,
    SCAN_MISSED_SPLIT,
    SCAN_OBJECT_BYTES,
)

# Key codes of _key: 0 image_id, 1 category_id, 2 bbox, 3 score, -1 other.


@numba.njit(cache=True, nogil=True)
def _ws(buf: np.ndarray, p: int) -> int:
    n = buf.shape[0]
    while p < n and (buf[p] == 32 or buf[p] == 10 or buf[p] == 13 or buf[p] == 9):
        p += 1
    return p


@numba.njit(cache=True, nogil=True)
def _number(buf: np.ndarray, p: int, pow10: np.ndarray) -> tuple[int, float, bool, bool]:
    """Parse a JSON number at ``p``: (end, value, exact, is_integer); end = -1 if not a number."""
    n = buf.shape[0]
    start = p
    neg = False
    if p < n and buf[p] == 45:  # '-'
        neg = True
        p += 1
    mant = np.uint64(0)
    sig = 0
    exp10 = 0
    digits = 0
    while p < n and 48 <= buf[p] <= 57:
        if mant != 0 or buf[p] != 48:
            if sig < 19:
                mant = mant * np.uint64(10) + np.uint64(buf[p] - 48)
            else:
                exp10 += 1
            sig += 1
        digits += 1
        p += 1
    if digits == 0:
        return -1, 0.0, False, False
    is_int = True
    if p < n and buf[p] == 46:  # '.'
        is_int = False
        p += 1
        fd = 0
        while p < n and 48 <= buf[p] <= 57:
            if mant != 0 or buf[p] != 48:
                if sig < 19:
                    mant = mant * np.uint64(10) + np.uint64(buf[p] - 48)
                    exp10 -= 1
                sig += 1
            else:
                exp10 -= 1
            fd += 1
            p += 1
        if fd == 0:
            return -1, 0.0, False, False
    if p < n and (buf[p] == 101 or buf[p] == 69):  # e / E
        is_int = False
        p += 1
        eneg = False
        if p < n and (buf[p] == 43 or buf[p] == 45):
            eneg = buf[p] == 45
            p += 1
        e = 0
        ed = 0
        while p < n and 48 <= buf[p] <= 57:
            if e < 100000:
                e = e * 10 + (buf[p] - 48)
            ed += 1
            p += 1
        if ed == 0:
            return -1, 0.0, False, False
        exp10 += -e if eneg else e
    if p - start > 0 and mant == 0:
        return p, -0.0 if neg else 0.0, True, is_int
    exact = sig <= 19 and mant <= np.uint64(9007199254740992) and -22 <= exp10 <= 22
    if not exact:
        return p, 0.0, False, is_int
    v = float(mant)
    v = v * pow10[exp10] if exp10 >= 0 else v / pow10[-exp10]
    return p, -v if neg else v, True, is_int


@numba.njit(cache=True, nogil=True)
def _skip_string(buf: np.ndarray, p: int) -> int:
    """``p`` at the opening quote; returns the index after the closing quote, -1 if unterminated."""
    n = buf.shape[0]
    p += 1
    while p < n:
        c = buf[p]
        if c == 92:  # backslash
            p += 2
            continue
        if c == 34:
            return p + 1
        p += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _skip_value(buf: np.ndarray, p: int) -> int:
    n = buf.shape[0]
    if p >= n:
        return -1
    c = buf[p]
    if c == 34:
        return _skip_string(buf, p)
    if c == 123 or c == 91:
        depth = 0
        while p < n:
            c = buf[p]
            if c == 34:
                p = _skip_string(buf, p)
                if p < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return p + 1
            p += 1
        return -1
    while p < n and buf[p] != 44 and buf[p] != 125 and buf[p] != 93 and buf[p] != 32 and buf[p] != 10:
        p += 1
    return p


@numba.njit(cache=True, nogil=True)
def _key(buf: np.ndarray, p: int, end: int) -> int:
    """Which known key the raw string ``buf[p:end]`` (without quotes) is."""
    ln = end - p
    if ln == 8 and buf[p] == 105:  # image_id
        s = "image_id"
        for i in range(8):
            if buf[p + i] != ord(s[i]):
                return -1
        return 0
    if ln == 11 and buf[p] == 99:  # category_id
        s = "category_id"
        for i in range(11):
            if buf[p + i] != ord(s[i]):
                return -1
        return 1
    if ln == 4 and buf[p] == 98 and buf[p + 1] == 98 and buf[p + 2] == 111 and buf[p + 3] == 120:
        return 2
    if ln == 5 and buf[p] == 115:  # score
        s = "score"
        for i in range(5):
            if buf[p + i] != ord(s[i]):
                return -1
        return 3
    return -1


@numba.njit(cache=True, nogil=True)
def scan(buf: np.ndarray, pow10: np.ndarray):  # type: ignore[no-untyped-def]
    """Returns (ok, n, ids (n,2), values (n,5), slow (k,3) = [slot, start, end]) slot = obj*5 + field."""
    cap = buf.shape[0] // SCAN_OBJECT_BYTES + 1  # no counting pass over the file (see coco_params)
    ids = np.empty((cap, 2), dtype=np.int64)
    vals = np.empty((cap, 5))
    status, n, slow = scan_part(buf, pow10, 0, -1, ids, vals, 0, cap)
    return status == SCAN_DONE, n, ids[:n], vals[:n], slow


@numba.njit(cache=True, nogil=True)
def scan_part(
    buf: np.ndarray,
    pow10: np.ndarray,
    start: int,
    split: int,
    ids: np.ndarray,
    vals: np.ndarray,
    row0: int,
    row_end: int,
):  # type: ignore[no-untyped-def]
    """Scan objects into rows ``row0:row_end`` of ``ids``/``vals``; returns (outcome, rows written, slow).

    ``start`` 0: from the opening bracket; else ``start`` is an object's first byte (the second part of a
    split file). With ``split`` >= 0, stops before the first object that starts at or past ``split``:
    ``SCAN_AT_SPLIT`` when that object starts exactly there (the second part, scanned from ``split``,
    then holds the rest), ``SCAN_MISSED_SPLIT`` otherwise (outcomes: ``coco_params``). Slots in ``slow`` are ``row * 5 + field`` (rows of
    ``vals``, not of this part).
    """
    cap = row_end
    slow = np.empty((((buf.shape[0] - start) // SCAN_OBJECT_BYTES + 1) * 5, 3), dtype=np.int64)
    n_slow = 0
    n_buf = buf.shape[0]
    n = row0
    if start == 0:
        p = _ws(buf, 0)
        if p >= n_buf or buf[p] != 91:
            return SCAN_FAIL, 0, slow[:0]
        p = _ws(buf, p + 1)
        if p < n_buf and buf[p] == 93:
            return (SCAN_DONE if _ws(buf, p + 1) == n_buf else SCAN_FAIL), 0, slow[:0]
    else:
        p = start
    while True:
        if split >= 0 and p >= split:
            return (SCAN_AT_SPLIT if p == split else SCAN_MISSED_SPLIT), n - row0, slow[:n_slow]
        if p >= n_buf or buf[p] != 123 or n >= cap:
            return SCAN_FAIL, 0, slow[:0]
        p = _ws(buf, p + 1)
        seen = 0
        while True:
            if p >= n_buf or buf[p] != 34:
                return SCAN_FAIL, 0, slow[:0]
            end = _skip_string(buf, p)
            if end < 0:
                return SCAN_FAIL, 0, slow[:0]
            k = _key(buf, p + 1, end - 1)
            p = _ws(buf, end)
            if p >= n_buf or buf[p] != 58:
                return SCAN_FAIL, 0, slow[:0]
            p = _ws(buf, p + 1)
            if k == 0 or k == 1:
                q, v, exact, is_int = _number(buf, p, pow10)
                if q < 0 or not is_int or not exact or v != np.floor(v) or abs(v) > 9.0e15:
                    return SCAN_FAIL, 0, slow[:0]
                ids[n, k] = np.int64(v)
                p = q
            elif k == 3:
                q, v, exact, is_int = _number(buf, p, pow10)
                if q < 0:
                    return SCAN_FAIL, 0, slow[:0]
                vals[n, 4] = v
                if not exact:
                    slow[n_slow, 0] = n * 5 + 4
                    slow[n_slow, 1] = p
                    slow[n_slow, 2] = q
                    n_slow += 1
                p = q
            elif k == 2:
                if p >= n_buf or buf[p] != 91:
                    return SCAN_FAIL, 0, slow[:0]
                p = _ws(buf, p + 1)
                for j in range(4):
                    q, v, exact, is_int = _number(buf, p, pow10)
                    if q < 0:
                        return SCAN_FAIL, 0, slow[:0]
                    vals[n, j] = v
                    if not exact:
                        slow[n_slow, 0] = n * 5 + j
                        slow[n_slow, 1] = p
                        slow[n_slow, 2] = q
                        n_slow += 1
                    p = _ws(buf, q)
                    if j < 3:
                        if p >= n_buf or buf[p] != 44:
                            return SCAN_FAIL, 0, slow[:0]
                        p = _ws(buf, p + 1)
                if p >= n_buf or buf[p] != 93:
                    return SCAN_FAIL, 0, slow[:0]
                p += 1
            else:
                p = _skip_value(buf, p)
                if p < 0:
                    return SCAN_FAIL, 0, slow[:0]
            if k >= 0:
                if seen & (1 << k):
                    return SCAN_FAIL, 0, slow[:0]
                seen |= 1 << k
            p = _ws(buf, p)
            if p < n_buf and buf[p] == 44:
                p = _ws(buf, p + 1)
                continue
            if p < n_buf and buf[p] == 125:
                p += 1
                break
            return SCAN_FAIL, 0, slow[:0]
        if seen != 15:
            return SCAN_FAIL, 0, slow[:0]
        n += 1
        p = _ws(buf, p)
        if p < n_buf and buf[p] == 44:
            p = _ws(buf, p + 1)
            continue
        if p < n_buf and buf[p] == 93:
            p = _ws(buf, p + 1)
            if p != n_buf:
                return SCAN_FAIL, 0, slow[:0]
            return SCAN_DONE, n - row0, slow[:n_slow]
        return SCAN_FAIL, 0, slow[:0]
