"""Calls to the internal services (search for similarity) with the caller's workspace forwarded."""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import BadRequest, BlindspotError, DependencyUnavailable
from shared.internal_auth import internal_headers


async def call_json(
    client: httpx.AsyncClient, method: str, path: str, workspace_id: int, scopes: frozenset[str], body: Any
) -> Any:
    """JSON call to an internal service; its 4xx is passed on with its message, an outage is a 503."""
    try:
        r = await client.request(method, path, json=body, headers=internal_headers(workspace_id, scopes))
    except httpx.HTTPError as exc:
        raise DependencyUnavailable(f"{client.base_url} does not answer: {type(exc).__name__}") from exc
    if r.status_code >= 500:
        raise DependencyUnavailable(f"{client.base_url}{path} failed with {r.status_code}")
    if r.status_code >= 400:
        try:
            payload = r.json()
            detail = payload.get("detail", r.text)
        except ValueError:
            detail = r.text
        err = BlindspotError(str(detail)[:1000])
        err.status_code = r.status_code
        err.code = "upstream_rejected" if r.status_code != 404 else "not_found"
        raise err
    return r.json()


async def similar_row_ids(
    client: httpx.AsyncClient,
    workspace_id: int,
    scopes: frozenset[str],
    anchors: list[int],
    score_threshold: float | None,
    limit: int,
    model_run_id: int | None,
) -> list[int]:
    """Rows similar to ``anchors`` (anchors included), following the search service's pages."""
    out: list[int] = list(anchors)
    cursor: str | None = None
    while len(out) < limit + len(anchors):
        body: dict[str, Any] = {
            "data_row_ids": anchors,
            "limit": min(500, limit),
            "include_anchors": False,
            "filter": {"model_run_id": model_run_id} if model_run_id else {},
        }
        if score_threshold is not None:
            body["score_threshold"] = max(-1.0, min(1.0, score_threshold))
        if cursor:
            body["cursor"] = cursor
        payload = await call_json(client, "POST", "/v1/similar", workspace_id, scopes, body)
        rows = payload.get("rows", []) if isinstance(payload, dict) else []
        out.extend(int(r["data_row_id"]) for r in rows)
        cursor = payload.get("next_cursor") if isinstance(payload, dict) else None
        if not cursor or not rows:
            break
    if not out:
        raise BadRequest("similar_to found no rows", context={"field": "similar_to"})
    return out[: limit + len(anchors)]
