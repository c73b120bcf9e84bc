"""The metrics HTTP app (port 8004): health, readiness and a run's metrics status.

Run: ``uvicorn --factory services.metrics.main:create_app --port 8004``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.metrics.api import routes
from shared.db.session import make_async_engine, make_engine, make_sessionmaker
from shared.health import postgres_check, redis_check
from shared.http import health_router, install_error_handlers
from shared.logging import configure_logging
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.async_engine = make_async_engine(settings.database)
        engine = make_engine(settings.database)
        app.state.sessions = make_sessionmaker(engine)
        yield
        await app.state.async_engine.dispose()
        engine.dispose()

    app = FastAPI(title="Blindspot metrics", lifespan=lifespan)

    async def postgres() -> None:
        await postgres_check(app.state.async_engine)()

    install_error_handlers(app)
    app.include_router(health_router({"postgres": postgres, "redis": redis_check(settings.redis.url)}))
    app.include_router(routes.router)
    return app
