"""PostgreSQL binary COPY, built with numpy (no Python object per row)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from sqlalchemy.orm import Session

_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_TYPES = {"int8": (">i8", 8), "float8": (">f8", 8), "bool": ("?", 1)}

Columns = Sequence[tuple[np.ndarray, str]]


def _tuples(columns: Columns, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` as binary COPY tuples: a ``(hi - lo, tuple bytes)`` uint8 array.

    Each tuple is ``int16 field count`` then, per field, ``int32 length`` and the big-endian value. The
    constant part (count, lengths) is one template row broadcast down; each column is then written
    into its byte slot with one strided copy.
    """
    widths = [_PG_TYPES[pg][1] for _, pg in columns]
    template = bytearray(len(columns).to_bytes(2, "big"))
    for w in widths:
        template += w.to_bytes(4, "big") + bytes(w)
    out = np.empty((hi - lo, len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(bytes(template), dtype=np.uint8)
    offset = 2
    for (values, pg), w in zip(columns, widths, strict=True):
        offset += 4
        big = np.asarray(values[lo:hi]).astype(_PG_TYPES[pg][0], copy=False)
        out[:, offset : offset + w] = big.reshape(-1, 1).view(np.uint8)
        offset += w
    return out


def binary_copy_chunks(columns: Columns, chunk_rows: int = 1 << 16) -> Iterator[bytes | memoryview]:
    """The PostgreSQL binary COPY stream of fixed-width columns, ``chunk_rows`` tuples at a time.

    ``columns``: (values (n,), pg type in {int8, float8, bool}). No NULLs. Chunks keep the peak memory
    small and let the server insert chunk k while chunk k + 1 is built.
    """
    n = len(columns[0][0])
    yield _PG_HEADER
    for lo in range(0, n, chunk_rows):
        yield _tuples(columns, lo, min(n, lo + chunk_rows)).data.cast("B")
    yield _PG_TRAILER


def binary_copy_payload(columns: Columns) -> bytes:
    """The whole binary COPY stream as one ``bytes`` (see ``binary_copy_chunks``)."""
    return b"".join(binary_copy_chunks(columns))


def copy_columns(session: Session, sql: str, columns: Columns) -> None:
    """``COPY ... FROM STDIN (FORMAT BINARY)`` of these columns on the session's connection."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        for chunk in binary_copy_chunks(columns):
            copy.write(chunk)
