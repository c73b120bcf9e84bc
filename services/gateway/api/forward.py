"""Routes the gateway forwards, after authenticating, to ingest, search and inference (same paths).

Bodies stream both ways (uploads never sit in the gateway's memory). The caller's workspace and scopes
travel in the internal headers (shared/internal_auth.py). A service that does not answer is a 503.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from services.gateway.api.deps import Principal, StateDep, require
from services.gateway.schemas import ERRORS
from shared.errors import DependencyUnavailable
from shared.internal_auth import internal_headers

router = APIRouter(responses={**ERRORS, 503: ERRORS[404] | {"description": "The service does not answer"}})

_PASS_REQUEST = ("content-type", "content-length", "accept", "content-encoding", "idempotency-key")
_PASS_RESPONSE = ("content-type", "content-disposition", "location", "cache-control", "etag", "retry-after")

# (service, path, methods). GET is read; every other method is write.
FORWARDED: list[tuple[str, str, tuple[str, ...]]] = [
    ("ingest", "/v1/datasets", ("GET", "POST")),
    ("ingest", "/v1/datasets/{path:path}", ("GET", "POST", "PUT", "PATCH", "DELETE")),
    ("ingest", "/v1/classes", ("GET", "POST")),
    ("ingest", "/v1/classes/{path:path}", ("GET", "POST", "PUT", "PATCH", "DELETE")),
    ("ingest", "/v1/runs", ("POST",)),
    ("ingest", "/v1/runs/{run_id}", ("PATCH",)),
    ("ingest", "/v1/runs/{run_id}/rows", ("PUT",)),
    ("ingest", "/v1/runs/{run_id}/predictions", ("GET", "POST", "PUT")),
    ("ingest", "/v1/runs/{run_id}/predictions/{path:path}", ("GET", "POST", "PUT", "DELETE")),
    ("ingest", "/v1/jobs/{job_id}", ("GET",)),
    ("search", "/v1/similar", ("POST",)),
    ("search", "/v1/slices", ("GET", "POST")),
    ("search", "/v1/slices/{path:path}", ("GET", "POST", "PUT", "PATCH", "DELETE")),
    ("search", "/v1/projections", ("GET", "POST")),
    ("search", "/v1/projections/{path:path}", ("GET", "POST", "DELETE")),
    ("inference", "/v1/runs/{run_id}/infer", ("POST",)),
]


async def forward(request: Request, service: str, principal: Principal, state: Any) -> StreamingResponse:
    client: httpx.AsyncClient = state.upstream[service]
    headers = {k: v for k, v in request.headers.items() if k.lower() in _PASS_REQUEST}
    headers.update(internal_headers(principal.workspace_id, principal.scopes))
    has_body = request.method in {"POST", "PUT", "PATCH"}
    req = client.build_request(
        request.method,
        request.url.path,
        params=str(request.query_params),
        headers=headers,
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise DependencyUnavailable(
            f"the {service} service does not answer ({type(exc).__name__}); retry later",
            context={"service": service},
        ) from exc
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASS_RESPONSE}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=out_headers,
        background=BackgroundTask(upstream.aclose),
    )


def _make(service: str, scope: str) -> Callable[..., Coroutine[Any, Any, StreamingResponse]]:
    checked = Depends(require(scope))

    async def endpoint(
        request: Request, state: StateDep, principal: Principal = checked
    ) -> StreamingResponse:
        return await forward(request, service, principal, state)

    return endpoint


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1].removesuffix(":path") for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


for _service, _path, _methods in FORWARDED:
    for _method in _methods:
        _scope = "read" if _method == "GET" else "write"
        _op = _path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(":path", "")
        router.add_api_route(
            _path,
            _make(_service, _scope),
            methods=[_method],
            tags=[_service],
            operation_id=f"forward_{_method.lower()}_{_op}",
            summary=f"Forwarded to the {_service} service ({_scope} scope)",
            response_model=None,
            openapi_extra={"parameters": _path_params(_path)} if "{" in _path else None,
        )
