"""Kill -9 chaos for the inference worker (issue 10, items 1-2), shared by the test and the benchmark.

A run's rows point at real images in S3; ``reference`` runs the task body in-process, undisturbed, on one
model run; ``chaos_round`` sends the same chunks as ``inference.run`` tasks (Redis DB 15, a key prefix of
its own) to a real ``celery -A services.inference.worker:app worker -Q inference`` subprocess, SIGKILLs it
(main process and pool child) at random moments while it holds a task, restarts it, and waits until every
chunk was written and nothing is left queued or unacked. ``predictions`` of both runs must then be equal.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from celery import Celery
from sqlalchemy.engine import make_url

from services.inference import tasks
from shared.adapters.storage import ObjectStore
from shared.celery import make_celery, send
from shared.contracts.tasks import InferenceRunPayload, Queue, TaskName
from shared.settings import (
    CelerySettings,
    DatabaseSettings,
    InferenceSettings,
    RedisSettings,
    S3Settings,
    Settings,
    TritonSettings,
)
from tools.demo_data import generate

REDIS_URL = os.environ.get("BLINDSPOT_TEST_RELIABILITY_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[3]
# Short but safe: soft limit 10 s, hard 20 s, a dead worker's task back after 21 s, checked every second.
CHAOS_CELERY = CelerySettings(task_time_limit_s=20, visibility_timeout_s=21, unacked_restore_interval_s=1)
INFERENCE = InferenceSettings(batch_size=4, task_rows=4, confidence=0.05, onnx_threads=1, fetch_workers=2)

Prediction = tuple[Any, ...]


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Seeded:
    workspace_id: int
    row_ids: list[int]


def seed_images(db_url: str, store: ObjectStore, n_images: int, *, seed: int = 7) -> Seeded:
    """A workspace with ``n_images`` demo scenes stored in S3 and registered as data rows."""
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(libpq(db_url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO workspaces (name) VALUES (%s) RETURNING id", (f"chaos-{tag}",))
        ws = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute("INSERT INTO datasets (workspace_id, name) VALUES (%s, 'chaos') RETURNING id", (ws,))
        ds = int(cur.fetchone()[0])  # type: ignore[index]
        row_ids: list[int] = []
        for i, (img, meta) in enumerate(generate(n_images, seed=seed)):
            key = f"ws{ws}/{tag}/{i}.jpg"
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            store.put(key, buf.getvalue(), "image/jpeg")
            cur.execute(
                "INSERT INTO data_rows (workspace_id, dataset_id, global_key, object_key, width, height,"
                " sha256) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (ws, ds, f"{tag}/{i}", key, meta.width, meta.height, "0" * 64),
            )
            row_ids.append(int(cur.fetchone()[0]))  # type: ignore[index]
    return Seeded(ws, row_ids)


def new_run(db_url: str, workspace_id: int, name: str) -> int:
    with psycopg.connect(libpq(db_url)) as conn:
        row = conn.execute(
            "INSERT INTO model_runs (workspace_id, name) VALUES (%s, %s) RETURNING id",
            (workspace_id, f"{name}-{uuid.uuid4().hex[:8]}"),
        ).fetchone()
    assert row is not None
    return int(row[0])


def predictions(db_url: str, run_id: int) -> list[Prediction]:
    """Every prediction of the run (class by name, coordinates rounded), in a canonical order."""
    with psycopg.connect(libpq(db_url)) as conn:
        return conn.execute(
            "SELECT p.data_row_id, c.name, round(p.x::numeric, 3), round(p.y::numeric, 3),"
            " round(p.w::numeric, 3), round(p.h::numeric, 3), round(p.confidence::numeric, 5)"
            " FROM predictions p JOIN classes c ON c.id = p.class_id WHERE p.model_run_id = %s"
            " ORDER BY 1, 7 DESC, 2, 3, 4, 5, 6",
            (run_id,),
        ).fetchall()


def run_row_count(db_url: str, run_id: int) -> int:
    with psycopg.connect(libpq(db_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM model_run_rows WHERE model_run_id = %s", (run_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def chunks(row_ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(row_ids[i : i + size]) for i in range(0, len(row_ids), size)]


def settings_for(db_url: str, s3: S3Settings, prefix: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=db_url),
        s3=s3,
        redis=RedisSettings(url=REDIS_URL),
        celery=celery_with(prefix),
        triton=TritonSettings(enabled=False),
        inference=INFERENCE,
    )


def celery_with(prefix: str) -> CelerySettings:
    return CHAOS_CELERY.model_copy(update={"key_prefix": prefix})


def reference(db_url: str, s3: S3Settings, run_id: int, row_ids: Sequence[int]) -> list[Prediction]:
    """The undisturbed run: the task body in-process, chunk by chunk, once each."""
    prefix = f"bs-chaos-ref-{uuid.uuid4().hex[:8]}:"
    settings = settings_for(db_url, s3, prefix)
    celery = make_celery("chaos-ref", settings)
    rt = tasks.build_runtime(settings, celery)
    try:
        for chunk in chunks(row_ids, INFERENCE.task_rows):
            tasks.run_inference(rt, InferenceRunPayload(model_run_id=run_id, data_row_ids=chunk))
    finally:
        rt.close()
        purge(prefix)
    return predictions(db_url, run_id)


def purge(prefix: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


def worker_env(db_url: str, s3: S3Settings, prefix: str) -> dict[str, str]:
    c = celery_with(prefix)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BLINDSPOT_DATABASE__URL": db_url,
        "BLINDSPOT_REDIS__URL": REDIS_URL,
        "BLINDSPOT_S3__ENDPOINT": s3.endpoint,
        "BLINDSPOT_S3__ACCESS_KEY": s3.access_key,
        "BLINDSPOT_S3__SECRET_KEY": s3.secret_key.get_secret_value(),
        "BLINDSPOT_S3__BUCKET": s3.bucket,
        "BLINDSPOT_TRITON__ENABLED": "false",
        "BLINDSPOT_CELERY__KEY_PREFIX": prefix,
        "BLINDSPOT_CELERY__TASK_TIME_LIMIT_S": str(c.task_time_limit_s),
        "BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S": str(c.visibility_timeout_s),
        "BLINDSPOT_CELERY__UNACKED_RESTORE_INTERVAL_S": str(c.unacked_restore_interval_s),
        "BLINDSPOT_INFERENCE__BATCH_SIZE": str(INFERENCE.batch_size),
        "BLINDSPOT_INFERENCE__CONFIDENCE": str(INFERENCE.confidence),
        "BLINDSPOT_INFERENCE__ONNX_THREADS": str(INFERENCE.onnx_threads),
        "BLINDSPOT_INFERENCE__FETCH_WORKERS": str(INFERENCE.fetch_workers),
        "BLINDSPOT_LOG_LEVEL": "WARNING",
    }


def start_worker(env: dict[str, str], name: str, log: Path, concurrency: int = 1) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "services.inference.worker:app",
                "worker",
                "-Q",
                Queue.inference.value,
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches the pool child too
        )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        kill9(proc)


@dataclass
class ChaosResult:
    kills: int
    kills_holding_a_task: int
    tasks_sent: int
    seconds: float


def _unacked(r: redis.Redis, prefix: str) -> int:
    return int(r.hlen(f"{prefix}unacked"))


def _queued(r: redis.Redis, prefix: str) -> int:
    return int(r.llen(f"{prefix}{Queue.inference.value}"))


def chaos_round(
    db_url: str,
    s3: S3Settings,
    run_id: int,
    row_ids: Sequence[int],
    *,
    kills: int,
    rnd: random.Random,
    log: Path,
    copies: int = 1,
    concurrency: int = 1,
    timeout_s: float = 300,
) -> ChaosResult:
    """Send every chunk ``copies`` times, SIGKILL the worker ``kills`` times mid-task, wait for the end."""
    prefix = f"bs-chaos-{uuid.uuid4().hex[:10]}:"
    env = worker_env(db_url, s3, prefix)
    client: Celery = make_celery("chaos-client", settings_for(db_url, s3, prefix))
    r = redis.Redis.from_url(REDIS_URL)
    start = time.monotonic()
    sent = 0
    holding = 0
    for _ in range(copies):
        for chunk in chunks(row_ids, INFERENCE.task_rows):
            send(client, TaskName.inference_run, InferenceRunPayload(model_run_id=run_id, data_row_ids=chunk))
            sent += 1
    proc = start_worker(env, "chaos-0", log, concurrency)
    try:
        for k in range(kills):
            # Wait until the worker holds a task (a message in the unacked hash), then strike at random.
            deadline = time.monotonic() + 60
            while _unacked(r, prefix) == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rnd.uniform(0.0, 0.8))
            holding += _unacked(r, prefix) > 0
            kill9(proc)
            proc = start_worker(env, f"chaos-{k + 1}", log, concurrency)
        deadline = start + timeout_s
        while True:
            done = run_row_count(db_url, run_id) == len(row_ids)
            if done and _queued(r, prefix) == 0 and _unacked(r, prefix) == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id}: {run_row_count(db_url, run_id)}/{len(row_ids)} rows written,"
                    f" {_queued(r, prefix)} queued, {_unacked(r, prefix)} unacked after {timeout_s} s"
                )
            time.sleep(0.25)
    finally:
        stop(proc)
        r.close()
        purge(prefix)
    return ChaosResult(kills, holding, sent, time.monotonic() - start)
