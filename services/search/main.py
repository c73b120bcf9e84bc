"""The search service (:8002): similarity, slices, projector. Internal: the gateway calls it.

    uvicorn services.search.main:create_app --factory --port 8002

With the embedded vector store (no ``BLINDSPOT_QDRANT__URL``) this process is the only one that opens
the store, so it also consumes the "embeddings" queue in a background thread (a Celery worker with
the solo pool); with a Qdrant server, run ``services.search.worker`` processes instead.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel

from services.search import tasks
from services.search.api import projections, similar, slices
from services.search.indexing import Blobs, ensure_collections
from services.search.runtime import Runtime, Sender
from services.search.worker import INPROCESS_HOSTNAME
from services.search.worker import app as celery_app
from shared.adapters.vectors import VectorStore, open_vector_store
from shared.celery import send
from shared.contracts.tasks import Queue, TaskName
from shared.db.session import make_engine, make_sessionmaker
from shared.health import redis_check, sync_check
from shared.http import health_router, install_error_handlers
from shared.logging import configure_logging, get_logger
from shared.settings import Settings, get_settings

log = get_logger(__name__)


def _celery_sender(name: TaskName, payload: BaseModel) -> Any:
    return send(celery_app, name, payload)


class InProcessWorker:
    """A Celery worker consuming queue "embeddings" in a thread of this process (solo pool)."""

    def __init__(self) -> None:
        self._worker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._worker = celery_app.WorkController(
            pool_cls="solo",
            concurrency=1,
            queues=[Queue.embeddings.value],
            hostname=INPROCESS_HOSTNAME,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._thread = threading.Thread(target=self._worker.start, name="embeddings-worker", daemon=True)
        self._thread.start()
        log.info("consuming queue in-process", queue=Queue.embeddings.value)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop(in_sighandler=False)
        if self._thread is not None:
            self._thread.join(timeout=15)


def create_app(
    settings: Settings | None = None,
    *,
    store: VectorStore | None = None,
    blobs: Blobs | None = None,
    sender: Sender | None = None,
    inprocess_worker: bool | None = None,
) -> FastAPI:
    """The app. Tests inject ``store``/``blobs``/``sender``; by default the lifespan builds them."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        engine = make_engine(settings.database)
        own_store = store is None
        vectors = store or open_vector_store(settings.qdrant)
        ensure_collections(vectors, settings)
        if blobs is None:
            from shared.adapters.storage import ObjectStore

            object_store: Blobs = ObjectStore(settings.s3)
        else:
            object_store = blobs
        rt = Runtime(
            settings=settings,
            sessions=make_sessionmaker(engine),
            store=vectors,
            blobs=object_store,
            send=sender or _celery_sender,
        )
        app.state.search = rt
        tasks.bind_runtime(rt)
        consume = inprocess_worker
        if consume is None:
            consume = (
                settings.qdrant.url is None
                and settings.search.inprocess_worker
                and not settings.celery.task_always_eager
            )
        worker = InProcessWorker() if consume else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            tasks.bind_runtime(None)
            if own_store:
                vectors.close()
            engine.dispose()

    app = FastAPI(
        title="Blindspot search (internal)",
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    install_error_handlers(app)

    async def db_ready() -> None:
        from sqlalchemy import text

        def ping() -> None:
            with app.state.search.sessions() as s:
                s.execute(text("SELECT 1"))

        await sync_check(ping)()

    async def vectors_ready() -> None:
        await sync_check(app.state.search.store.ping)()

    app.include_router(
        health_router(
            {"postgres": db_ready, "qdrant": vectors_ready, "redis": redis_check(settings.redis.url)}
        )
    )
    for module in (similar, slices, projections):
        app.include_router(module.router)
    return app
