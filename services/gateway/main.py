"""The gateway app: the one public entry point (auth, gallery, drill-down, labeling, forwarding).

``create_app()`` builds nothing at import time; the lifespan builds the async engine, the S3 presigner,
the HTTP clients of ingest/search/inference and the Celery producer once, and closes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.api import (
    auth,
    catalog,
    forward,
    gallery,
    labeling,
    metrics,
    rows,
    runs,
)
from services.gateway.api.deps import route_scope
from services.gateway.presign import Presigner
from services.gateway.state import GatewayState
from shared.celery import make_celery
from shared.db.session import make_async_engine, make_async_sessionmaker
from shared.errors import NotFound
from shared.health import postgres_check
from shared.http import error_response, health_router, install_error_handlers
from shared.logging import configure_logging
from shared.settings import Settings, get_settings

UPSTREAMS = ("ingest", "search", "inference")

OPENAPI_TAGS = [
    {"name": "auth", "description": "Workspaces and API keys (keys are shown once, stored hashed)."},
    {"name": "runs", "description": "Model runs and their rows."},
    {"name": "gallery", "description": "Rows of a run filtered by any metric, keyset pages."},
    {"name": "metrics", "description": "Drill-down: per-class tables, histograms, confusion, curves, TIDE."},
    {"name": "catalog", "description": "Rows across datasets, labeled or not; similarity via search."},
    {"name": "labeling", "description": "Labeling projects, batches, export and import of labels."},
    {"name": "ingest", "description": "Forwarded to the ingest service (same paths)."},
    {"name": "search", "description": "Forwarded to the search service (same paths)."},
    {"name": "inference", "description": "Forwarded to the inference service."},
]


def create_app(
    settings: Settings | None = None,
    *,
    upstream_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway. ``upstream_transports`` replaces the network transport of a forwarded service (tests
    run ingest/search in-process through ``httpx.ASGITransport``)."""
    settings = settings or get_settings()
    transports = dict(upstream_transports or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        engine = make_async_engine(settings.database)
        urls = {
            "ingest": settings.services.ingest,
            "search": settings.services.search,
            "inference": settings.services.inference,
        }
        clients = {
            name: httpx.AsyncClient(
                base_url=urls[name],
                transport=transports.get(name),
                timeout=httpx.Timeout(settings.gateway.upstream_timeout_s, connect=5.0),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            for name in UPSTREAMS
        }
        state = GatewayState(
            settings=settings,
            engine=engine,
            sessions=make_async_sessionmaker(engine),
            presigner=Presigner(settings.s3),
            upstream=clients,
            celery=make_celery("gateway", settings),
        )
        app.state.gw = state
        try:
            yield
        finally:
            for c in clients.values():
                await c.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Blindspot API",
        version="1.0.0",
        description=(
            "Find where an object detector fails and feed the failures back into labeling.\n\n"
            "Every route but `/healthz`, `/readyz` and `POST /v1/workspaces` needs an API key: "
            "`Authorization: Bearer bsk_...` or `X-API-Key: bsk_...`. Errors always have the shape "
            '`{"error": code, "detail": message, "context": {...}}`.'
        ),
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        openapi_tags=OPENAPI_TAGS,
    )
    install_error_handlers(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        response = error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    async def db_ready() -> None:
        await postgres_check(app.state.gw.engine)()

    app.include_router(health_router({"postgres": db_ready}))
    for module in (auth, runs, gallery, metrics, rows, catalog, labeling, forward):
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                scope = route_scope(route.dependant)
                route.openapi_extra = {**(route.openapi_extra or {}), "x-required-scope": scope or "none"}
        app.include_router(module.router)

    @app.api_route(
        "/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def unknown_route(rest: str) -> None:
        raise NotFound(f"no route /v1/{rest}")

    web = settings.gateway.web_dir
    if web.is_dir():
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app
