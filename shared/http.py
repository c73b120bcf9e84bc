"""HTTP pieces every service uses: the one error handler/JSON shape and the health router.

``/healthz``: the process is alive (no dependency checks). ``/readyz``: every real dependency the
service needs answers (Postgres, Redis, S3, Qdrant, Triton...), else 503 naming the failing ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import kombu.exceptions as kombu_exc
import redis.exceptions as redis_exc
import urllib3
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import BlindspotError
from shared.logging import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


def error_response(status: int, code: str, detail: str, context: dict | None = None) -> ORJSONResponse:
    body: dict = {"error": code, "detail": detail}
    if context:
        body["context"] = context
    return ORJSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """One JSON error shape for every failure; a dependency outage is a 503, never a 500."""

    @app.exception_handler(BlindspotError)
    async def _blindspot(_: Request, exc: BlindspotError) -> ORJSONResponse:
        return error_response(exc.status_code, exc.code, exc.detail, exc.context)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        # Framework errors (an unparsable multipart/JSON body, 404 route, 405) keep the one JSON shape.
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return error_response(422, "validation_error", detail, {"errors": errors})

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> ORJSONResponse:
        log.warning("database unavailable", error=str(exc.orig)[:200])
        return error_response(503, "dependency_unavailable", "the database is unavailable; retry later")

    @app.exception_handler(DataError)
    async def _db_data(_: Request, exc: DataError) -> ORJSONResponse:
        # SQLSTATE class 22 (data exception): a value the client sent does not fit its column, e.g. an
        # id past int8 or a string with a NUL byte. The client's input is wrong, not the server.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else "invalid value"
        return error_response(422, "invalid_input", f"a value does not fit its column: {reason}")

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> ORJSONResponse:
        if exc.connection_invalidated:
            return error_response(503, "dependency_unavailable", "the database is unavailable; retry later")
        log.error("database error", error=str(exc.orig)[:500])
        return error_response(500, "internal_error", "internal database error")

    @app.exception_handler(ConnectionError)
    async def _conn(_: Request, exc: ConnectionError) -> ORJSONResponse:
        log.warning("dependency unavailable", error=str(exc)[:200])
        return error_response(503, "dependency_unavailable", "a dependency is unavailable; retry later")

    async def _broker(_: Request, exc: Exception) -> ORJSONResponse:
        log.warning("task broker unavailable", error=str(exc)[:200])
        return error_response(
            503, "dependency_unavailable", "the task broker (Redis) is unavailable; retry later"
        )

    for broker_error in (redis_exc.ConnectionError, redis_exc.TimeoutError, kombu_exc.OperationalError):
        app.add_exception_handler(broker_error, _broker)

    @app.exception_handler(urllib3.exceptions.HTTPError)
    async def _storage(_: Request, exc: urllib3.exceptions.HTTPError) -> ORJSONResponse:
        # The S3 client (minio) raises urllib3 errors when the object store does not answer.
        log.warning("object storage unavailable", error=str(exc)[:200])
        return error_response(
            503, "dependency_unavailable", "object storage (S3) is unavailable; retry later"
        )


def health_router(checks: Mapping[str, ReadinessCheck], timeout_s: float = 3.0) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: every dependency answers", response_model=None)
    async def readyz() -> ORJSONResponse:
        results: dict[str, dict[str, object]] = {}

        async def run(name: str, check: ReadinessCheck) -> None:
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(check(), timeout_s)
                results[name] = {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 1)}
            except Exception as exc:
                results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}

        await asyncio.gather(*(run(n, c) for n, c in checks.items()))
        ok = all(r["ok"] for r in results.values())
        return ORJSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results}, 200 if ok else 503
        )

    return router
