"""Scale-out benchmark: the same work through a queue with 1 worker, then 2; prints the speed-up.

    .venv/bin/python benchmarks/scale_out.py metrics --rows 10000

metrics: N rows of a run through the ``metrics`` queue (``metrics.compute_rows`` tasks of ``--chunk``
rows) consumed by real Celery metrics workers (subprocesses, Redis broker). Timed from the first task
sent until every row's per-object/per-row metrics are committed (the per-class aggregation, a single
task, is excluded: it does not scale out). Goal: >= 1.8x with 2 workers on 2 cores. The anchor is the
1-worker time measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.metrics_pipeline import fresh_database
from tests.fixtures.metrics import (
    client_app,
    enqueue_run,
    libpq,
    reset_run_results,
    seed_run,
    start_worker,
    stop_worker,
    vacuum_results,
    wait_ready,
    worker_env,
)


def _rows_done(url: str, run_id: int, n_rows: int, since: float, timeout: float) -> float:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while time.monotonic() < since + timeout:
            row = conn.execute(
                "SELECT count(*) FROM row_metrics WHERE model_run_id = %s", (run_id,)
            ).fetchone()
            if row is not None and row[0] >= n_rows:
                return time.monotonic() - since
            time.sleep(0.05)
    raise TimeoutError("rows not done")


def metrics(args: argparse.Namespace) -> None:
    fresh_database(args.db_url)
    run = seed_run(args.db_url, args.rows, seed=2)
    times: dict[int, float] = {}
    for n in (1, 2):
        best = float("inf")
        for _ in range(args.repeats):
            # Long debounce: the aggregation must not run inside the timed window; own broker key prefix.
            prefix = f"bench-scale-{uuid.uuid4().hex[:8]}:"
            env = worker_env(
                args.db_url,
                args.redis_url,
                BLINDSPOT_METRICS__AGGREGATE_DEBOUNCE_S="600",
                BLINDSPOT_CELERY__KEY_PREFIX=prefix,
            )
            app = client_app(args.db_url, args.redis_url, prefix)
            reset_run_results(args.db_url, run.model_run_id)
            vacuum_results(args.db_url)
            procs = [start_worker(env, f"scale{n}-{i}") for i in range(n)]
            try:
                wait_ready(app, n)
                # Warm-up task (numba kernels load from cache in each new worker process).
                enqueue_run(app, run.model_run_id, run.row_ids[: n * 10], 10)
                _rows_done(args.db_url, run.model_run_id, n * 10, time.monotonic(), 120)
                reset_run_results(args.db_url, run.model_run_id)
                vacuum_results(args.db_url)
                start = time.monotonic()
                enqueue_run(app, run.model_run_id, run.row_ids, args.chunk)
                best = min(best, _rows_done(args.db_url, run.model_run_id, args.rows, start, 1800))
            finally:
                for p in procs:
                    stop_worker(p)
        times[n] = best
        print(f"metrics, {n} worker(s): {args.rows} rows in {best:.2f}s ({args.rows / best:,.0f} rows/s)")
    print(f"metrics speed-up 2 workers vs 1: {times[1] / times[2]:.2f}x (goal >= 1.8x on 2 cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    m = sub.add_parser("metrics", help="rows through the metrics queue")
    m.add_argument("--rows", type=int, default=10_000)
    m.add_argument("--chunk", type=int, default=500)
    m.add_argument("--repeats", type=int, default=1)
    m.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/blindspot_bench_scale")
    m.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    m.set_defaults(fn=metrics)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
