"""The ingest app: ``uvicorn services.ingest.main:create_app --factory --port 8001``.

Internal service: every /v1 route needs the gateway's internal headers (shared.internal_auth).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from PIL import Image
from sqlalchemy import text

from services.ingest.api import datasets, imports, runs
from services.ingest.context import IngestContext
from shared.adapters.storage import ObjectStore
from shared.celery import make_celery
from shared.db.session import make_engine, make_sessionmaker
from shared.health import redis_check, sync_check
from shared.http import error_response, health_router, install_error_handlers
from shared.logging import configure_logging
from shared.settings import Settings, get_settings


def build_context(settings: Settings) -> IngestContext:
    """Engine, S3 client, Celery app and the decode/put thread pool: built once per process."""
    Image.MAX_IMAGE_PIXELS = settings.limits.max_image_pixels
    engine = make_engine(settings.database)
    store = ObjectStore(settings.s3, max_connections=settings.ingest.workers * 2 + 4)
    return IngestContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=store,
        celery=make_celery("ingest", settings),
        pool=ThreadPoolExecutor(settings.ingest.workers, thread_name_prefix="ingest"),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    holder: dict[str, IngestContext] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        ctx = build_context(settings)
        with contextlib.suppress(Exception):  # S3 down at start: /readyz says so; uploads answer 503
            ctx.store.ensure_bucket()
        app.state.ctx = ctx
        holder["ctx"] = ctx
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(title="Blindspot ingest", version="1", lifespan=lifespan)
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        limit = settings.limits.max_request_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return error_response(
                413, "payload_too_large", f"request body of {length} bytes exceeds {limit} bytes"
            )
        return await call_next(request)

    def pg() -> None:
        with holder["ctx"].engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def s3() -> None:
        holder["ctx"].store.ping()

    app.include_router(
        health_router(
            {"postgres": sync_check(pg), "redis": redis_check(settings.broker_url), "s3": sync_check(s3)}
        )
    )
    app.include_router(datasets.router)
    app.include_router(imports.router)
    app.include_router(runs.router)
    return app
