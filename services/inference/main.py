"""The inference service (:8003): queues detector runs; the worker (services.inference.worker) runs them.

    uvicorn services.inference.main:create_app --factory --port 8003

``/readyz`` checks Postgres, Redis and the model: with Triton on, the detector model is ready on the
server; with it off, the ONNX file loads in ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from celery import Celery
from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from services.inference.api import runs
from services.inference.api.deps import AppState
from services.inference.runtime import onnx_session
from services.inference.worker import app as celery_app
from shared.adapters.triton import AsyncTriton
from shared.db.session import make_async_engine, make_engine, make_sessionmaker
from shared.errors import DependencyUnavailable
from shared.health import postgres_check, redis_check, sync_check
from shared.http import ReadinessCheck, health_router, install_error_handlers
from shared.logging import configure_logging
from shared.settings import Settings, get_settings


def detector_info(settings: Settings) -> dict[str, str]:
    if settings.triton.enabled:
        return {
            "backend": f"triton-{settings.triton.protocol}",
            "model": settings.triton.detector_model,
            "url": settings.triton.url,
        }
    return {
        "backend": "onnxruntime",
        "model": Path(settings.models.detector_onnx).name,
        "onnx": str(settings.models.detector_onnx),
    }


def _model_check(settings: Settings, app: FastAPI) -> ReadinessCheck:
    if settings.triton.enabled:
        model = settings.triton.detector_model

        async def triton_ready() -> None:
            client: AsyncTriton = app.state.triton
            if not await client.is_model_ready(model):
                raise DependencyUnavailable(f"Triton model {model!r} is not ready at {settings.triton.url}")

        return triton_ready
    loaded: dict[str, float] = {}
    path = Path(settings.models.detector_onnx)

    def onnx_loads() -> None:
        mtime = path.stat().st_mtime if path.exists() else -1.0
        if loaded.get(str(path)) != mtime:
            onnx_session(path, 1)
            loaded[str(path)] = mtime

    return sync_check(onnx_loads)


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> FastAPI:
    """The app. Tests inject ``celery`` (their own broker); by default the worker module's app sends."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        engine = make_engine(settings.database)
        async_engine = make_async_engine(settings.database)
        app.state.async_engine = async_engine
        app.state.triton = AsyncTriton.from_settings(settings.triton) if settings.triton.enabled else None
        app.state.inference = AppState(
            settings=settings,
            sessions=make_sessionmaker(engine),
            celery=celery or celery_app,
            detector_info=detector_info(settings),
        )
        try:
            yield
        finally:
            if app.state.triton is not None:
                await app.state.triton.close()
            await async_engine.dispose()
            engine.dispose()

    app = FastAPI(title="Blindspot inference", lifespan=lifespan, default_response_class=ORJSONResponse)
    install_error_handlers(app)

    async def postgres() -> None:
        await postgres_check(app.state.async_engine)()

    app.include_router(
        health_router(
            {
                "postgres": postgres,
                "redis": redis_check(settings.redis.url),
                "model": _model_check(settings, app),
            }
        )
    )
    app.include_router(runs.router)
    return app
