"""Celery tasks of the metrics service: thin wrappers that own the transaction and enqueue after commit.

``metrics.compute_rows`` -> per-object/per-row metrics of a row set, then a debounced
``metrics.aggregate_run`` (each row task stores a fresh token in Redis and schedules the aggregation
``settings.metrics.aggregate_debounce_s`` later; only the task holding the latest token runs, so N row tasks in a burst
cause one aggregation shortly after the last).
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import service
from services.metrics.worker import app
from shared.celery import house_task, send
from shared.contracts.tasks import AggregateRunPayload, ComputeRowsPayload, EmbedObjectsPayload, TaskName
from shared.db.enqueue import on_commit
from shared.db.session import make_engine, make_sessionmaker, session_scope
from shared.logging import get_logger
from shared.settings import get_settings

log = get_logger(__name__)


@lru_cache(maxsize=1)
def _sessions() -> sessionmaker[Session]:
    """Built on first use inside the worker process (never at import time)."""
    return make_sessionmaker(make_engine(get_settings().database))


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis.url)


def _debounce_key(model_run_id: int) -> str:
    return f"{get_settings().celery.key_prefix}blindspot:metrics:aggregate:{model_run_id}"


def schedule_aggregate(model_run_id: int, task_seconds: float = 0.0) -> None:
    """Schedule the run's aggregation after the debounce, or twice this row task's duration if longer.

    Row tasks of a burst finish about one task duration apart (per worker), so waiting twice that
    keeps the aggregation from running between them on a slow or loaded machine.
    """
    countdown = max(get_settings().metrics.aggregate_debounce_s, 2.0 * task_seconds)
    token = uuid.uuid4().hex
    _redis().set(_debounce_key(model_run_id), token, ex=3600)
    send(
        app,
        TaskName.metrics_aggregate_run,
        AggregateRunPayload(model_run_id=model_run_id, debounce_token=token),
        countdown=countdown,
    )


@house_task(app, TaskName.metrics_compute_rows)
def compute_rows(**kwargs: Any) -> dict[str, Any]:
    payload = ComputeRowsPayload.model_validate(kwargs)
    started = time.monotonic()
    with session_scope(_sessions()) as session:
        result = service.compute_rows(session, payload.model_run_id, payload.data_row_ids)
        if not result.skipped:
            on_commit(session, lambda: schedule_aggregate(payload.model_run_id, time.monotonic() - started))
            if get_settings().metrics.embed_objects:
                objects = EmbedObjectsPayload(
                    model_run_id=payload.model_run_id, data_row_ids=payload.data_row_ids
                )
                on_commit(session, lambda: send(app, TaskName.search_embed_objects, objects))
    log.info(
        "metrics rows computed", model_run_id=result.model_run_id, rows=result.rows, objects=result.objects
    )
    return {"rows": result.rows, "objects": result.objects}


@house_task(app, TaskName.metrics_aggregate_run)
def aggregate_run(**kwargs: Any) -> dict[str, Any]:
    payload = AggregateRunPayload.model_validate(kwargs)
    if payload.debounce_token is not None:
        current = _redis().get(_debounce_key(payload.model_run_id))
        if isinstance(current, bytes) and current.decode() != payload.debounce_token:
            return {"superseded": True}
    with session_scope(_sessions()) as session:
        result = service.aggregate_run(
            session,
            payload.model_run_id,
            thresholds_changed=payload.thresholds_changed,
            chunk_rows=get_settings().metrics.refresh_chunk_rows,
        )

        def refresh() -> None:
            for chunk in result.rows_to_recompute:
                send(
                    app,
                    TaskName.metrics_compute_rows,
                    ComputeRowsPayload(model_run_id=payload.model_run_id, data_row_ids=chunk),
                )

        if result.rows_to_recompute:
            on_commit(session, refresh)
    log.info(
        "metrics run aggregated",
        model_run_id=payload.model_run_id,
        classes=result.classes,
        rows_by_sql=result.rows_recomputed_by_sql,
    )
    return {"classes": result.classes, "cells": result.cells, "rows_by_sql": result.rows_recomputed_by_sql}
