"""Reliability of the metrics workers (issue 10, items 1-2): kill -9 mid-run and duplicate delivery.

Real Celery workers (subprocesses, Redis broker on a dedicated DB with short visibility timeouts) are
killed with SIGKILL at random moments while a run is processed, and every task is sent twice. After
restarts, per-row and per-class metrics equal an undisturbed in-process evaluation: no row lost, none
counted twice.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from typing import Any

import pytest
import redis
from celery.result import allow_join_result
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from services.metrics import domain, service
from shared.celery import send
from shared.contracts.tasks import AggregateRunPayload, ComputeRowsPayload, TaskName
from tests.fixtures.metrics import (
    client_app,
    enqueue_run,
    reset_run_results,
    seed_run,
    start_worker,
    stop_worker,
    wait_aggregated,
    wait_ready,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_URL = os.environ.get("BLINDSPOT_TEST_METRICS_REDIS_URL", "redis://127.0.0.1:6379/11")
CHUNK = 100


def _snapshot(db_url: str, run_id: int) -> dict[str, Any]:
    eng = create_engine(db_url)
    out: dict[str, Any] = {}
    with eng.connect() as c:
        out["rows"] = [
            tuple(r)
            for r in c.execute(
                text("SELECT * FROM row_metrics WHERE model_run_id = :r ORDER BY data_row_id"), {"r": run_id}
            )
        ]
        out["row_classes"] = [
            tuple(r)
            for r in c.execute(
                text(
                    "SELECT * FROM row_class_metrics WHERE model_run_id = :r ORDER BY data_row_id, class_id"
                ),
                {"r": run_id},
            )
        ]
        out["objects"] = c.execute(
            text(
                "SELECT count(*), count(DISTINCT (kind, object_id)) FROM object_matches WHERE model_run_id = :r"
            ),
            {"r": run_id},
        ).one()
        out["classes"] = [
            tuple(r)
            for r in c.execute(
                text("SELECT * FROM class_metrics WHERE model_run_id = :r ORDER BY split, class_id"),
                {"r": run_id},
            )
        ]
        out["cells"] = [
            tuple(r)
            for r in c.execute(
                text("SELECT * FROM confusion_cells WHERE model_run_id = :r ORDER BY 2, 3, 4"), {"r": run_id}
            )
        ]
    eng.dispose()
    return out


def test_kill9_and_duplicates_lose_nothing_and_count_nothing_twice(db_url: str) -> None:
    run = seed_run(db_url, 5000, seed=5, crowd_frac=0.02, empty_rows=20)
    # Undisturbed reference, in-process.
    factory = sessionmaker(create_engine(db_url), expire_on_commit=False)
    for rows in domain.chunks(run.row_ids, CHUNK):
        with factory.begin() as s:
            service.compute_rows(s, run.model_run_id, rows)
    with factory.begin() as s:
        service.aggregate_run(s, run.model_run_id)
    want = _snapshot(db_url, run.model_run_id)
    assert len(want["rows"]) == len(run.row_ids)
    reset_run_results(db_url, run.model_run_id)

    # A key prefix of its own: concurrent runs of this test never share a queue.
    prefix = f"bs-test-{uuid.uuid4().hex[:10]}:"
    env = worker_env(
        db_url,
        REDIS_URL,
        BLINDSPOT_CELERY__KEY_PREFIX=prefix,
        BLINDSPOT_CELERY__TASK_TIME_LIMIT_S="30",
        BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S="35",
        BLINDSPOT_CELERY__UNACKED_RESTORE_INTERVAL_S="1",
        BLINDSPOT_METRICS__AGGREGATE_DEBOUNCE_S="0.5",
        BLINDSPOT_METRICS__SWEEP_INTERVAL_S="1",
        BLINDSPOT_METRICS__SWEEP_GRACE_S="5",
    )
    app = client_app(db_url, REDIS_URL, prefix)
    rnd = random.Random(1234)
    procs = [start_worker(env, "rel-a"), start_worker(env, "rel-b")]
    try:
        wait_ready(app, 2)
        # 1. Every task once; SIGKILL a worker (main process and pool child) 3 times at random moments,
        # the first while the two workers still have rows to compute (~2 s of work).
        sent = enqueue_run(app, run.model_run_id, run.row_ids, CHUNK)
        for i in range(3):
            time.sleep(rnd.uniform(0.2, 1.2))
            victim = rnd.randrange(len(procs))
            stop_worker(procs[victim], signal.SIGKILL)
            procs[victim] = start_worker(env, f"rel-{i}-{victim}")
        # The debounced (delayed) aggregate_run may die with a killed worker that held it: the workers'
        # sweeper re-sends it (sweep_grace_s after it was due), so the run completes without any help.
        start = time.monotonic()
        wait_aggregated(
            db_url, run.model_run_id, len(run.row_ids), start, 240, redis_url=REDIS_URL, key_prefix=prefix
        )
        after_kills = _snapshot(db_url, run.model_run_id)
        # 2. Every task delivered twice (duplicates, redeliveries): results must not change. The
        # results are read after one explicit aggregation sent once the duplicates are done.
        # allow_join_result: an in-process worker started by an earlier test (the search service's
        # embedded one) marks this process as a worker, where Celery refuses result.get().
        with allow_join_result():
            results = [
                send(
                    app,
                    TaskName.metrics_compute_rows,
                    ComputeRowsPayload(model_run_id=run.model_run_id, data_row_ids=c),
                    ignore_result=False,
                )
                for _ in range(2)
                for c in domain.chunks(run.row_ids, CHUNK)
            ]
            sent += len(results)
            for r in results:
                r.get(timeout=240)
            send(
                app,
                TaskName.metrics_aggregate_run,
                AggregateRunPayload(model_run_id=run.model_run_id),
                ignore_result=False,
            ).get(timeout=240)
        after_duplicates = _snapshot(db_url, run.model_run_id)
    finally:
        for p in procs:
            stop_worker(p)
    assert sent == 3 * len(domain.chunks(run.row_ids, CHUNK))
    for got in (after_kills, after_duplicates):
        assert got["objects"][0] == got["objects"][1] == want["objects"][0]
        assert len(got["rows"]) == len(want["rows"])
        assert got["rows"] == want["rows"]
        assert got["row_classes"] == want["row_classes"]
        assert got["cells"] == want["cells"]
        assert got["classes"] == want["classes"]


def test_sweeper_resends_an_aggregation_whose_message_was_lost(db_url: str) -> None:
    """A run left pending in Redis with no message anywhere (its delayed aggregate_run died with a
    worker) is aggregated by a worker's sweeper, with the current token."""

    run = seed_run(db_url, 60, seed=9)
    factory = sessionmaker(create_engine(db_url), expire_on_commit=False)
    for rows in domain.chunks(run.row_ids, 30):
        with factory.begin() as s:
            service.compute_rows(s, run.model_run_id, rows)
    prefix = f"bs-test-{uuid.uuid4().hex[:10]}:"
    r = redis.Redis.from_url(REDIS_URL)
    token_key = f"{prefix}blindspot:metrics:aggregate:{run.model_run_id}"
    pending_key = f"{prefix}blindspot:metrics:aggregate-pending"
    r.set(token_key, "the-lost-one", ex=600)
    r.zadd(pending_key, {str(run.model_run_id): time.time() - 10})
    env = worker_env(
        db_url,
        REDIS_URL,
        BLINDSPOT_CELERY__KEY_PREFIX=prefix,
        BLINDSPOT_METRICS__SWEEP_INTERVAL_S="0.5",
        BLINDSPOT_METRICS__SWEEP_GRACE_S="2",
    )
    proc = start_worker(env, "sweeper")
    try:
        wait_ready(client_app(db_url, REDIS_URL, prefix), 1)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with factory() as s:
                done = s.execute(
                    text("SELECT aggregated_at IS NOT NULL FROM model_runs WHERE id = :r"),
                    {"r": run.model_run_id},
                ).scalar()
            if done and r.zscore(pending_key, str(run.model_run_id)) is None:
                break
            time.sleep(0.2)
    finally:
        stop_worker(proc)
        r.delete(token_key, pending_key)
    assert done, "the sweeper did not re-send the lost aggregation"
    with factory() as s:
        n = s.execute(
            text("SELECT count(*) FROM class_metrics WHERE model_run_id = :r"), {"r": run.model_run_id}
        ).scalar()
    assert n and n > 0
