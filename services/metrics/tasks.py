"""Celery tasks of the metrics service: thin wrappers that own the transaction and enqueue after commit.

A large run's first computation is a bulk load (shared/db/partitions.py): the first row task switches
the run's result tables to loading tables, and the aggregation indexes and attaches them.

``metrics.compute_rows`` -> per-object/per-row metrics of a row set, then a debounced
``metrics.aggregate_run`` (each row task stores a fresh token in Redis and schedules the aggregation
``settings.metrics.aggregate_debounce_s`` later; only the task holding the latest token runs, so N row tasks in a burst
cause one aggregation shortly after the last). The last row task of a bulk load (a large run's first
computation) schedules it at once: nothing is left to wait for.

A delayed message can die with the worker holding it. So each scheduled aggregation is also recorded as
*pending* (a Redis sorted set: run -> when it is due), cleared only by the aggregation holding the current
token once it has committed. Every metrics worker runs :class:`AggregateSweeper`, which re-sends the
aggregation of any run still pending ``sweep_grace_s`` after it was due: a lost aggregation is late, never
lost. A running aggregation holds a lease on its entry, so a long one is not re-sent while it works.
"""

from __future__ import annotations

import threading
import time
import uuid
from functools import lru_cache
from typing import Any

import psycopg
import redis
from celery import bootsteps
from celery.signals import worker_process_init
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import service
from services.metrics.worker import app
from shared.celery import RETRYABLE, house_task, send
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


def _pending_key() -> str:
    return f"{get_settings().celery.key_prefix}blindspot:metrics:aggregate-pending"


# Remove the run's pending entry only while the token is still the current one (a newer row task may
# have scheduled another aggregation since this one started).
_CLEAR_IF_CURRENT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def schedule_aggregate(model_run_id: int, task_seconds: float = 0.0, *, now: bool = False) -> None:
    """Schedule the run's aggregation after the debounce, or twice this row task's duration if longer.

    Row tasks of a burst finish about one task duration apart (per worker), so waiting twice that
    keeps the aggregation from running between them on a slow or loaded machine. ``now``: every row
    of the run has results, there is no burst left to wait for.
    """
    countdown = 0.0 if now else max(get_settings().metrics.aggregate_debounce_s, 2.0 * task_seconds)
    token = uuid.uuid4().hex
    pipe = _redis().pipeline()
    pipe.set(_debounce_key(model_run_id), token, ex=24 * 3600)
    pipe.zadd(_pending_key(), {str(model_run_id): time.time() + countdown})
    pipe.execute()
    send(
        app,
        TaskName.metrics_aggregate_run,
        AggregateRunPayload(model_run_id=model_run_id, debounce_token=token),
        countdown=countdown,
    )


@worker_process_init.connect
def _warm_kernels(**_: Any) -> None:
    """Each pool process loads its numba kernels in the background right after it starts (a task
    arriving meanwhile waits on the same kernels' compile lock, never on a second load)."""

    def warm() -> None:
        try:
            service.warm_kernels()
        except Exception as exc:  # only an optimisation: the first task loads them otherwise
            log.warning("metrics kernels not warmed", error=str(exc))

    threading.Thread(target=warm, name="warm-kernels", daemon=True).start()


# A unique violation in a row task: another row set overlapping this one committed the shared rows first
# (both found nothing to replace); run again, this task replaces them.
ROW_TASK_RETRY = (*RETRYABLE, psycopg.errors.UniqueViolation)


@house_task(app, TaskName.metrics_compute_rows, retry_on=ROW_TASK_RETRY)
def compute_rows(**kwargs: Any) -> dict[str, Any]:
    payload = ComputeRowsPayload.model_validate(kwargs)
    started = time.monotonic()
    with session_scope(_sessions()) as session:
        switched = service.prepare_bulk_load(
            session, payload.model_run_id, get_settings().metrics.bulk_load_min_rows
        )
    if switched:
        with session_scope(_sessions()) as session:
            service.analyze_inputs(session, payload.model_run_id)
    with session_scope(_sessions()) as session:
        result = service.compute_rows(session, payload.model_run_id, payload.data_row_ids)
        if not result.skipped:
            on_commit(session, lambda: _after_rows(payload.model_run_id, time.monotonic() - started))
            if get_settings().metrics.embed_objects:
                objects = EmbedObjectsPayload(
                    model_run_id=payload.model_run_id, data_row_ids=payload.data_row_ids
                )
                on_commit(session, lambda: send(app, TaskName.search_embed_objects, objects))
    log.info(
        "metrics rows computed",
        model_run_id=result.model_run_id,
        rows=result.rows,
        objects=result.objects,
        seconds=round(time.monotonic() - started, 3),
    )
    return {"rows": result.rows, "objects": result.objects}


def _after_rows(model_run_id: int, task_seconds: float) -> None:
    """A row set's results committed: the run's aggregation, at once when this was the last row set of
    a bulk load (its first computation)."""
    complete = False
    try:
        with session_scope(_sessions()) as session:
            complete = service.bulk_load_complete(session, model_run_id)
    except Exception as exc:  # only a hint: the debounced aggregation is scheduled whatever happens here
        log.warning("bulk load completeness not checked", model_run_id=model_run_id, error=str(exc))
    schedule_aggregate(model_run_id, task_seconds, now=complete)


@house_task(app, TaskName.metrics_aggregate_run)
def aggregate_run(**kwargs: Any) -> dict[str, Any]:
    payload = AggregateRunPayload.model_validate(kwargs)
    settings = get_settings()
    if payload.debounce_token is not None:
        current = _redis().get(_debounce_key(payload.model_run_id))
        if isinstance(current, bytes) and current.decode() != payload.debounce_token:
            return {"superseded": True}
        # Lease: the sweeper leaves this run alone while the aggregation works (re-sent if it dies).
        lease = time.time() + settings.celery.task_time_limit_s
        _redis().zadd(_pending_key(), {str(payload.model_run_id): lease}, xx=True)
    # A bulk-loaded run: its gallery indexes are built while the aggregation reads the matches, and
    # the tables are attached in the aggregation's transaction (rows and per-class metrics appear
    # together).
    started = time.monotonic()
    build = service.start_index_build(
        settings.database.libpq_url, payload.model_run_id, settings.metrics.bulk_index_parallel
    )
    attached = False
    t_aggregated = t_indexed = started
    try:
        with session_scope(_sessions()) as session:
            result = service.aggregate_run(
                session,
                payload.model_run_id,
                thresholds_changed=payload.thresholds_changed,
                chunk_rows=get_settings().metrics.refresh_chunk_rows,
            )
            t_aggregated = time.monotonic()
            if build is not None:
                attached = service.attach_bulk_load(session, build, payload.model_run_id)
            t_indexed = time.monotonic()

            def refresh() -> None:
                for chunk in result.rows_to_recompute:
                    send(
                        app,
                        TaskName.metrics_compute_rows,
                        ComputeRowsPayload(model_run_id=payload.model_run_id, data_row_ids=chunk),
                    )

            if result.rows_to_recompute:
                on_commit(session, refresh)
            if payload.debounce_token is not None:
                token, run = payload.debounce_token, payload.model_run_id
                on_commit(session, lambda: _clear_pending(run, token))
    finally:
        if build is not None:
            build.close()
    log.info(
        "metrics run aggregated",
        model_run_id=payload.model_run_id,
        classes=result.classes,
        rows_by_sql=result.rows_recomputed_by_sql,
        bulk_load_attached=attached,
        seconds_aggregation=round(t_aggregated - started, 3),
        seconds_index_wait_attach=round(t_indexed - t_aggregated, 3),
        seconds=round(time.monotonic() - started, 3),
    )
    return {"classes": result.classes, "cells": result.cells, "rows_by_sql": result.rows_recomputed_by_sql}


def _clear_pending(model_run_id: int, token: str) -> None:
    _redis().eval(_CLEAR_IF_CURRENT, 2, _debounce_key(model_run_id), _pending_key(), token, str(model_run_id))


def sweep_pending_aggregations(now: float | None = None) -> list[int]:
    """Re-send the aggregation of every run pending ``sweep_grace_s`` past its due time.

    Runs in each metrics worker's main process (a few Redis calls); a short Redis lock per run keeps
    several workers from re-sending the same run at once. The re-sent task carries the current token, and
    the entry gets a new due time, so a run is re-sent at most once per grace period.
    """
    settings = get_settings().metrics
    now = time.time() if now is None else now
    r = _redis()
    due = r.zrangebyscore(_pending_key(), "-inf", now - settings.sweep_grace_s)
    resent: list[int] = []
    for raw in due:
        run = int(raw.decode() if isinstance(raw, bytes) else str(raw))
        lock = f"{_debounce_key(run)}:sweep"
        if not r.set(lock, "1", nx=True, ex=max(1, int(settings.sweep_grace_s))):
            continue
        token = r.get(_debounce_key(run))
        r.zadd(_pending_key(), {str(run): now + settings.aggregate_debounce_s}, xx=True)
        send(
            app,
            TaskName.metrics_aggregate_run,
            AggregateRunPayload(
                model_run_id=run, debounce_token=token.decode() if isinstance(token, bytes) else None
            ),
        )
        resent.append(run)
    if resent:
        log.warning("metrics aggregations re-sent by the sweeper", model_run_ids=resent)
    return resent


class AggregateSweeper(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: :func:`sweep_pending_aggregations` every ``sweep_interval_s`` on the worker's timer."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        interval = get_settings().metrics.sweep_interval_s
        if interval > 0:
            self.tref = worker.timer.call_repeatedly(interval, self._tick, (), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    @staticmethod
    def _tick() -> None:
        try:
            sweep_pending_aggregations()
        except Exception as exc:  # the broker may be down: the next tick tries again
            log.warning("metrics aggregation sweep failed", error=str(exc))


app.steps["worker"].add(AggregateSweeper)
