"""Metrics worker death, at scale (issue 10, item 1): kill -9 at random moments mid-run, nothing lost.

    .venv/bin/python benchmarks/reliability_metrics_worker_death.py                # 40,000 rows, 20 kills
    .venv/bin/python benchmarks/reliability_metrics_worker_death.py --rows 60000 --kills 30

A run of ``--rows`` rows (a large one: its first computation is a bulk load, shared/db/partitions.py) is
computed once undisturbed in-process (the anchor), then reset and sent as ``metrics.compute_rows`` tasks
to 2 real metrics workers (subprocesses, Redis broker with short visibility timeouts and the aggregation
sweeper on), one of which is SIGKILLed (main process and pool child) ``--kills`` times at random moments
while rows are still missing, and restarted. Printed: kills, how many landed while rows were missing,
seconds to completion, and the comparison with the anchor: rows lost, rows counted twice, objects,
per-row, per-(row, class), per-class and confusion tables equal. Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.metrics_pipeline import fresh_database
from services.metrics import domain, service
from shared.db.partitions import partition
from tests.fixtures.metrics import (
    client_app,
    enqueue_run,
    libpq,
    reset_run_results,
    seed_run,
    start_worker,
    stop_worker,
    wait_aggregated,
    wait_ready,
    worker_env,
)
from tests.integration.metrics.test_reliability import _snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument(
        "--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/blindspot_bench_metrics_death"
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args()

    fresh_database(args.db_url)
    run = seed_run(args.db_url, args.rows, seed=5, crowd_frac=0.02, empty_rows=20)
    factory = sessionmaker(create_engine(args.db_url), expire_on_commit=False)
    t0 = time.perf_counter()
    with factory.begin() as s:
        service.prepare_bulk_load(s, run.model_run_id, 1)
    for rows in domain.chunks(run.row_ids, args.chunk):
        with factory.begin() as s:
            service.compute_rows(s, run.model_run_id, rows)
    service.finish_bulk_load(libpq(args.db_url), run.model_run_id, 2)
    with factory.begin() as s:
        service.aggregate_run(s, run.model_run_id)
    anchor_s = time.perf_counter() - t0
    want = _snapshot(args.db_url, run.model_run_id)
    reset_run_results(args.db_url, run.model_run_id)

    prefix = f"bench-death-{uuid.uuid4().hex[:8]}:"
    env = worker_env(
        args.db_url,
        args.redis_url,
        BLINDSPOT_CELERY__KEY_PREFIX=prefix,
        BLINDSPOT_CELERY__TASK_TIME_LIMIT_S="30",
        BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S="35",
        BLINDSPOT_CELERY__UNACKED_RESTORE_INTERVAL_S="1",
        BLINDSPOT_METRICS__AGGREGATE_DEBOUNCE_S="0.5",
        BLINDSPOT_METRICS__SWEEP_INTERVAL_S="1",
        BLINDSPOT_METRICS__SWEEP_GRACE_S="5",
    )
    app = client_app(args.db_url, args.redis_url, prefix)
    rnd = random.Random(args.seed)
    procs = [start_worker(env, "death-a"), start_worker(env, "death-b")]
    mid_run = 0
    try:
        wait_ready(app, 2)
        start = time.monotonic()
        enqueue_run(app, run.model_run_id, run.row_ids, args.chunk)
        with psycopg.connect(libpq(args.db_url), autocommit=True) as conn:
            for i in range(args.kills):
                time.sleep(rnd.uniform(0.2, 1.5))
                done = conn.execute(
                    f"SELECT count(*) FROM {partition('row_metrics', run.model_run_id)}"
                ).fetchone()[0]  # type: ignore[index]
                mid_run += int(done < args.rows)
                victim = rnd.randrange(len(procs))
                stop_worker(procs[victim], signal.SIGKILL)
                procs[victim] = start_worker(env, f"death-{i}-{victim}")
        _, t_all = wait_aggregated(
            args.db_url,
            run.model_run_id,
            args.rows,
            start,
            timeout=900,
            redis_url=args.redis_url,
            key_prefix=prefix,
        )
    finally:
        for p in procs:
            stop_worker(p)
    got = _snapshot(args.db_url, run.model_run_id)
    lost = len(want["rows"]) - len({r[1] for r in got["rows"]})
    twice = got["objects"][0] - got["objects"][1]
    same = {k: got[k] == want[k] for k in ("rows", "row_classes", "classes", "cells")}
    same["objects"] = tuple(got["objects"]) == tuple(want["objects"])
    print(f"anchor: {args.rows} rows undisturbed in-process in {anchor_s:.1f}s")
    print(
        f"{args.kills} kill -9 ({mid_run} while rows were still missing); run complete and aggregated in"
        f" {t_all:.1f}s; rows lost {lost}; objects counted twice {twice}; equal to the anchor: {same}"
    )
    if lost or twice or not all(same.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
