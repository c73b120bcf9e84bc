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
    run = seed_run(db_url, 2000, seed=5, crowd_frac=0.02, empty_rows=20)
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
    )
    app = client_app(db_url, REDIS_URL, prefix)
    rnd = random.Random(1234)
    procs = [start_worker(env, "rel-a"), start_worker(env, "rel-b")]
    try:
        wait_ready(app, 2)
        # 1. Every task once; SIGKILL a worker (main process and pool child) 3 times at random moments.
        start = time.monotonic()
        sent = enqueue_run(app, run.model_run_id, run.row_ids, CHUNK)
        for i in range(3):
            time.sleep(rnd.uniform(0.3, 2.5))
            victim = rnd.randrange(len(procs))
            stop_worker(procs[victim], signal.SIGKILL)
            procs[victim] = start_worker(env, f"rel-{i}-{victim}")
        # Known gap: the debounced (delayed) aggregate_run can be lost together with a killed worker
        # that held it. Rows are still checked strictly below; a lost aggregation is re-sent once and
        # the test then reports the gap (xfail) after every strict assertion has passed.
        aggregate_lost: str | None = None
        try:
            wait_aggregated(db_url, run.model_run_id, len(run.row_ids), start, timeout=180)
        except TimeoutError as exc:
            aggregate_lost = str(exc)
            send(
                app,
                TaskName.metrics_aggregate_run,
                AggregateRunPayload(model_run_id=run.model_run_id),
                ignore_result=False,
            ).get(timeout=240)
        after_kills = _snapshot(db_url, run.model_run_id)
        # 2. Every task delivered twice (duplicates, redeliveries): results must not change. The
        # results are read after one explicit aggregation sent once the duplicates are done.
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
    if aggregate_lost is not None:
        pytest.xfail(
            f"rows exact, but the delayed aggregation was lost with a killed worker: {aggregate_lost}"
        )
