"""Metrics pipeline benchmark: a run's stored predictions -> per-object, per-row and per-class metrics
in Postgres, through the real Celery metrics workers (subprocesses, Redis broker), with 1 then 2 workers.

    .venv/bin/python benchmarks/metrics_pipeline.py               # 20,000 rows (quick)
    .venv/bin/python benchmarks/metrics_pipeline.py --rows 100000 # the issue's size

Data: ~7 GT and ~10 predicted boxes per row, 10 classes, generated straight into Postgres with COPY
(a dedicated database, dropped and re-created). Anchor: FiftyOne needs about 19 minutes for such a
100,000-row run (``evaluate_detections`` with per-sample results); the goal is under 30 s.
Printed: seconds until every row's metrics are stored, seconds until the per-class aggregation has
committed (a bulk load's last row task schedules it at once; other bursts wait ``aggregate_debounce_s``,
or twice a row task's duration if longer), the aggregation's own duration, and the 2-worker speed-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.db import migrate
from shared.db.partitions import partition
from tests.fixtures.metrics import (
    client_app,
    enqueue_run,
    libpq,
    reset_run_results,
    seed_run,
    start_worker,
    stop_worker,
    vacuum_results,
    wait_aggregated,
    wait_ready,
    worker_env,
)

FIFTYONE_100K_S = 19 * 60.0


def fresh_database(url: str) -> None:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    migrate.upgrade(url)


def aggregate_seconds(url: str, run_id: int) -> float:
    """Time one aggregation in-process (same code as the task), for the breakdown."""
    from sqlalchemy.orm import sessionmaker

    from services.metrics import service

    eng = create_engine(url)
    t0 = time.perf_counter()
    with sessionmaker(eng).begin() as s:
        service.aggregate_run(s, run_id)
    eng.dispose()
    return time.perf_counter() - t0


def wait_with_watchdog(
    args: argparse.Namespace, app: object, run: object, start: float, prefix: str
) -> tuple[float, float, int]:
    """``wait_aggregated``, re-sending the rows still missing when nothing progresses for 60 s.

    Tasks are idempotent, so a re-send is safe; it only happens when messages vanish from the broker
    (e.g. another process flushing the Redis database), and the printout says so.
    """
    resent = 0
    while True:
        try:
            t_rows, t_all = wait_aggregated(
                args.db_url,
                run.model_run_id,
                args.rows,
                start,
                0,
                redis_url=args.redis_url,
                key_prefix=prefix,  # type: ignore[attr-defined]
            )
            return t_rows, t_all, resent
        except TimeoutError:
            pass
        last, last_change = -1, time.monotonic()
        while True:
            with psycopg.connect(libpq(args.db_url)) as conn:
                done = conn.execute(
                    f"SELECT count(*) FROM {partition('row_metrics', run.model_run_id)} WHERE model_run_id = %s",  # type: ignore[attr-defined]
                    (run.model_run_id,),  # type: ignore[attr-defined]
                ).fetchone()[0]  # type: ignore[index]
            if done != last:
                last, last_change = done, time.monotonic()
            if done >= args.rows:
                t_rows, t_all = wait_aggregated(
                    args.db_url,
                    run.model_run_id,
                    args.rows,
                    start,
                    600,
                    redis_url=args.redis_url,
                    key_prefix=prefix,  # type: ignore[attr-defined]
                )
                return t_rows, t_all, resent
            if time.monotonic() - last_change > 60:
                with psycopg.connect(libpq(args.db_url)) as conn:
                    missing = [
                        r[0]
                        for r in conn.execute(
                            "SELECT m.data_row_id FROM model_run_rows m LEFT JOIN "
                            + partition("row_metrics", run.model_run_id)  # type: ignore[attr-defined]
                            + " r"
                            " ON r.model_run_id = m.model_run_id AND r.data_row_id = m.data_row_id"
                            " WHERE m.model_run_id = %s AND r.data_row_id IS NULL ORDER BY 1",
                            (run.model_run_id,),  # type: ignore[attr-defined]
                        ).fetchall()
                    ]
                enqueue_run(app, run.model_run_id, missing, args.chunk)  # type: ignore[attr-defined]
                resent += len(missing)
                last_change = time.monotonic()
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--workers", default="1,2", help="worker counts to time, comma separated")
    ap.add_argument("--chunk", type=int, default=1000, help="rows per metrics.compute_rows task")
    ap.add_argument(
        "--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/blindspot_bench_metrics"
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--debounce", type=float, default=0.5, help="aggregate_debounce_s for the workers")
    ap.add_argument("--log-level", default="WARNING", help="workers' log level (INFO: each task's timings)")
    args = ap.parse_args()

    fresh_database(args.db_url)
    t0 = time.perf_counter()
    run = seed_run(args.db_url, args.rows, seed=1)
    with psycopg.connect(libpq(args.db_url)) as conn:
        n_obj = conn.execute(
            "SELECT (SELECT count(*) FROM predictions WHERE model_run_id = %s),"
            " (SELECT count(*) FROM annotations)",
            (run.model_run_id,),
        ).fetchone()
    print(
        f"seeded {args.rows} rows, {n_obj[0]} predictions, {n_obj[1]} GT in {time.perf_counter() - t0:.1f}s"
    )

    results: dict[int, tuple[float, float]] = {}
    log_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    for n in [int(x) for x in args.workers.split(",")]:
        # A fresh broker key prefix per configuration: nothing left over from another one (or another user).
        prefix = f"bench-metrics-{uuid.uuid4().hex[:8]}:"
        env = worker_env(
            args.db_url,
            args.redis_url,
            BLINDSPOT_METRICS__AGGREGATE_DEBOUNCE_S=str(args.debounce),
            BLINDSPOT_CELERY__KEY_PREFIX=prefix,
            BLINDSPOT_LOG_LEVEL=args.log_level,
        )
        app = client_app(args.db_url, args.redis_url, prefix)
        reset_run_results(args.db_url, run.model_run_id)
        vacuum_results(args.db_url)
        procs = [start_worker(env, f"bench{n}-{i}", f"{log_dir}/w{n}-{i}.log") for i in range(n)]
        try:
            wait_ready(app, n)
            start = time.monotonic()
            tasks = enqueue_run(app, run.model_run_id, run.row_ids, args.chunk)
            t_rows, t_all, resent = wait_with_watchdog(args, app, run, start, prefix)
        finally:
            for p in procs:
                stop_worker(p)
        results[n] = (t_rows, t_all)
        note = f" ({resent} rows re-sent after a stall: tasks lost outside the workers)" if resent else ""
        print(
            f"{n} worker(s): {tasks} tasks; rows stored in {t_rows:.2f}s ({args.rows / t_rows:,.0f} rows/s);"
            f" per-class aggregated at {t_all:.2f}s{note}"
        )
    t_agg = aggregate_seconds(args.db_url, run.model_run_id)
    print(f"aggregation alone (class metrics, curves, confusion, TIDE from stored matches): {t_agg:.2f}s")
    if 1 in results and 2 in results:
        print(
            f"speed-up 2 workers vs 1: rows {results[1][0] / results[2][0]:.2f}x,"
            f" end to end {results[1][1] / results[2][1]:.2f}x"
        )
    best = min(v[1] for v in results.values())
    scale = 100_000 / args.rows
    print(
        f"FiftyOne anchor for 100,000 rows: {FIFTYONE_100K_S:.0f}s; this run end to end: {best:.2f}s"
        f" for {args.rows} rows (x{scale:.1f} linear extrapolation to 100k: {best * scale:.1f}s;"
        f" ratio vs FiftyOne {FIFTYONE_100K_S / (best * scale):.0f}x)"
    )
    print(f"worker logs: {log_dir}")


if __name__ == "__main__":
    main()
