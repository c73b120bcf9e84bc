"""shared.db.pgcopy's stream layout, byte by byte (the round trips against Postgres are in
tests/integration/foundation/test_pgcopy.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from shared.db.pgcopy import Column, encode


def test_binary_copy_payload_layout() -> None:
    payload = encode(
        [
            Column("a", "int8", np.array([1, 2], dtype=np.int64)),
            Column("b", "float8", np.array([0.5, 2.0])),
            Column("c", "bool", np.array([True, False])),
        ]
    )
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00" and payload[-2:] == b"\xff\xff"
    body = payload[19:-2]
    first = struct.unpack(">hiqidib", body[: 2 + 12 + 12 + 5])
    assert first == (3, 8, 1, 8, 0.5, 1, 1)
    assert len(body) == 2 * (2 + 12 + 12 + 5)


def test_text_codes_outside_the_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="label codes"):
        encode([Column("s", "text", np.array([0, 2]), labels=["TP", "FP"])])
    # A NULL row's code is not looked at.
    encode([Column("s", "text", np.array([0, 7]), null=np.array([False, True]), labels=["TP", "FP"])])
