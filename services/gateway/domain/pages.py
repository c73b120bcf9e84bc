"""Keyset cursors bound to their query, and histogram buckets that carry their gallery filter."""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

import orjson

from services.gateway.domain.filters import RATE_COLUMNS, is_id
from shared.errors import BadRequest

# ------------------------------------------------------------------------------------------------ cursor


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(cursor: str, signature: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
        assert isinstance(payload, dict) and is_id(payload.get("id"))
    except Exception as exc:
        raise BadRequest("cursor is malformed", context={"field": "cursor"}) from exc
    if payload.get("sig") != signature:
        raise BadRequest(
            "cursor belongs to a different query (filter, sort or thresholds changed)",
            context={"field": "cursor"},
        )
    return payload


def query_signature(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- histograms


def histogram_edges(column: str, bins: int, vmin: float | None, vmax: float | None) -> list[float]:
    """Bucket edges: [0, 1] in ``bins`` steps for rates; unit-aligned integer buckets for counts."""
    if column in RATE_COLUMNS:
        return [round(i / bins, 12) for i in range(bins + 1)]
    lo = math.floor(vmin) if vmin is not None else 0
    hi = math.ceil(vmax) if vmax is not None else 1
    if hi <= lo:
        hi = lo + 1
    width = max(1, math.ceil((hi - lo) / bins))
    edges = [float(lo)]
    while edges[-1] < hi:
        edges.append(edges[-1] + width)
    return edges


def bucket_conditions(
    metric: str, class_name: str | None, lo: float | None, hi: float | None, last: bool
) -> list[dict[str, Any]]:
    """The conditions selecting exactly a bucket's rows: [lo, hi), the last bucket [lo, hi]."""
    base: dict[str, Any] = {"field": metric}
    if class_name:
        base["class_name"] = class_name
    if lo is None:
        return [{**base, "op": "is_null"}]
    return [{**base, "op": "gte", "value": lo}, {**base, "op": "lte" if last else "lt", "value": hi}]
