"""Celery tasks of queue "embeddings". Each takes ids, owns its transaction, and is safe to run twice."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Any

from pydantic import BaseModel

from services.search import indexing, projections, service
from services.search.runtime import Runtime
from services.search.worker import app
from shared.celery import house_task, send
from shared.contracts.tasks import (
    EmbedObjectsPayload,
    EmbedRowsPayload,
    MatchSlicesPayload,
    ProjectPayload,
    TaskName,
)
from shared.db.enqueue import on_commit
from shared.db.session import make_engine, make_sessionmaker, session_scope
from shared.logging import get_logger
from shared.settings import get_settings

log = get_logger(__name__)
_runtime: Runtime | None = None


def bind_runtime(rt: Runtime | None) -> None:
    """Use these clients (the API lifespan binds its own when it consumes the queue in-process)."""
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    """The worker's clients, built on the first task (never at import time)."""
    global _runtime
    if _runtime is None:
        from shared.adapters.storage import ObjectStore
        from shared.adapters.vectors import open_vector_store

        settings = get_settings()
        store = open_vector_store(settings.qdrant)
        indexing.ensure_collections(store, settings)

        def sender(name: TaskName, payload: BaseModel) -> Any:
            return send(app, name, payload)

        _runtime = Runtime(
            settings=settings,
            sessions=make_sessionmaker(make_engine(settings.database)),
            store=store,
            blobs=ObjectStore(settings.s3),
            send=sender,
        )
    return _runtime


@house_task(app, TaskName.search_embed_rows)
def embed_rows(**kwargs: Any) -> dict[str, Any]:
    p = EmbedRowsPayload.model_validate(kwargs)
    rt = runtime()
    n = rt.settings.search.task_rows
    head, rest = p.data_row_ids[:n], p.data_row_ids[n:]
    with session_scope(rt.sessions) as session:
        res = indexing.embed_rows(session, rt.store, rt.embedder, rt.blobs, rt.settings, p.workspace_id, head)
        follow = MatchSlicesPayload(workspace_id=p.workspace_id, data_row_ids=head)
        on_commit(session, partial(rt.send, TaskName.search_match_slices, follow))
        if rest:
            more = EmbedRowsPayload(workspace_id=p.workspace_id, data_row_ids=rest)
            on_commit(session, partial(rt.send, TaskName.search_embed_rows, more))
    log.info("embedded rows", workspace_id=p.workspace_id, **asdict(res))
    return asdict(res)


@house_task(app, TaskName.search_embed_objects)
def embed_objects(**kwargs: Any) -> dict[str, Any]:
    p = EmbedObjectsPayload.model_validate(kwargs)
    rt = runtime()
    n = rt.settings.search.task_rows
    head, rest = p.data_row_ids[:n], p.data_row_ids[n:]
    with session_scope(rt.sessions) as session:
        res = indexing.embed_objects(
            session, rt.store, rt.embedder, rt.blobs, rt.settings, p.model_run_id, head
        )
        if rest:
            more = EmbedObjectsPayload(model_run_id=p.model_run_id, data_row_ids=rest)
            on_commit(session, partial(rt.send, TaskName.search_embed_objects, more))
    log.info("embedded objects", model_run_id=p.model_run_id, **asdict(res))
    return asdict(res)


@house_task(app, TaskName.search_match_slices)
def match_slices(**kwargs: Any) -> dict[str, int]:
    p = MatchSlicesPayload.model_validate(kwargs)
    rt = runtime()
    with session_scope(rt.sessions) as session:
        added = service.match_slices(session, rt.store, rt.settings, p.workspace_id, p.data_row_ids)
    return {str(k): v for k, v in added.items()}


@house_task(app, TaskName.search_project)
def project(**kwargs: Any) -> int:
    p = ProjectPayload.model_validate(kwargs)
    rt = runtime()
    try:
        with session_scope(rt.sessions) as session:
            return projections.compute(session, rt.store, rt.settings, p.projection_id)
    except Exception:
        with session_scope(rt.sessions) as session:
            projections.mark_failed(session, p.projection_id)
        raise
