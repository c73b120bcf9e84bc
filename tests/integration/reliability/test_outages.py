"""Dependency outages: Postgres, Redis and the S3 server stopped and restarted during an ingest and during
a model run. Every server here is the test's own, on spare ports (embedded Postgres, a redis-server,
SeaweedFS); the machine's shared servers are never touched.

While a dependency is down the API answers 503 ``dependency_unavailable`` (never 500) and writes nothing;
Celery tasks retry with backoff; after the restart everything completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image
from pydantic import SecretStr

from blindspot.stack import postgres, redis, seaweed
from shared.db import migrate
from shared.settings import REPO_ROOT, DatabaseSettings, IngestSettings, RedisSettings, S3Settings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

ACCESS, SECRET = "outage-test", "outage-test-secret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deps:
    """The test's own Postgres, Redis and SeaweedFS, each stoppable and restartable on the same port."""

    root: Path
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    redis_proc: redis.RedisProcess | None = None
    s3: seaweed.SeaweedHandle | None = None

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/outages"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def env(self) -> dict[str, str]:
        return {
            "BLINDSPOT_DATABASE__URL": self.db_url,
            "BLINDSPOT_REDIS__URL": self.redis_url,
            "BLINDSPOT_S3__ENDPOINT": f"127.0.0.1:{self.s3_port}",
            "BLINDSPOT_S3__ACCESS_KEY": ACCESS,
            "BLINDSPOT_S3__SECRET_KEY": SECRET,
            "BLINDSPOT_S3__BUCKET": "outages",
            # Short enough that a task lost with its worker's connection comes back within the test.
            "BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S": "40",
            "BLINDSPOT_CELERY__TASK_TIME_LIMIT_S": "30",
            "BLINDSPOT_CELERY__UNACKED_RESTORE_INTERVAL_S": "1",
        }

    def settings(self) -> Settings:
        return Settings(
            env="test",
            database=DatabaseSettings(url=self.db_url, pool_size=2, statement_timeout_ms=5000),
            redis=RedisSettings(url=self.redis_url),
            s3=S3Settings(
                endpoint=f"127.0.0.1:{self.s3_port}",
                access_key=ACCESS,
                secret_key=SecretStr(SECRET),
                bucket="outages",
            ),
            ingest=IngestSettings(workers=2, metrics_chunk_rows=50),
        )

    def start_pg(self) -> None:
        postgres.start(self.root / "pg", self.pg_port)

    def stop_pg(self) -> None:
        postgres.stop(self.root / "pg", mode="immediate")

    def start_redis(self) -> None:
        self.redis_proc = redis.start(self.root / "redis", self.redis_port, persist=True)

    def stop_redis(self) -> None:
        if self.redis_proc is not None:
            redis.stop(self.redis_proc)  # SIGTERM: redis saves its dataset (queued tasks) first

    def start_s3(self) -> None:
        self.s3 = seaweed.start(self.root / "s3", self.s3_port, ACCESS, SECRET, buckets=("outages",))

    def stop_s3(self) -> None:
        if self.s3 is not None:
            self.s3.stop()


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deps]:
    d = Deps(tmp_path_factory.mktemp("outages"))
    try:
        d.start_pg()
        d.start_redis()
        d.start_s3()
        migrate.ensure_database(d.db_url)
        migrate.upgrade(d.db_url)
        yield d
    finally:
        d.stop_s3()
        d.stop_redis()
        d.stop_pg()


def sql(deps: Deps, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(deps.db_url.replace("+psycopg", "")) as conn:
        cur = conn.execute(query, args)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (seed * 40 % 256, seed * 90 % 256, seed * 20 % 256)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
async def ingest(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    from services.ingest.main import create_app

    app = create_app(deps.settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest", timeout=60) as client:
            yield client


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "dependency_unavailable"
    assert body["detail"]


async def test_ingest_answers_503_writes_nothing_and_recovers(deps: Deps, ingest: httpx.AsyncClient) -> None:
    from shared.internal_auth import internal_headers

    (ws,) = sql(deps, "INSERT INTO workspaces (name) VALUES ('outages') RETURNING id")[0]
    headers = internal_headers(ws)
    r = await ingest.post("/v1/datasets", json={"name": "outages"}, headers=headers)
    assert r.status_code == 201, r.text
    ds = r.json()["id"]

    async def upload(*keys: int) -> httpx.Response:
        files = [("files", (f"img{k}.png", png(k), "image/png")) for k in keys]
        return await ingest.post(f"/v1/datasets/{ds}/rows", files=files, headers=headers)

    def rows() -> set[str]:
        return {k for (k,) in sql(deps, "SELECT global_key FROM data_rows WHERE dataset_id = %s", ds)}

    assert (await upload(1, 2)).status_code == 200
    assert rows() == {"img1.png", "img2.png"}

    # --- S3 down ---------------------------------------------------------------------------------
    deps.stop_s3()
    try:
        assert_unavailable(await upload(3, 4))
        ready = await ingest.get("/readyz")
        assert ready.status_code == 503
        assert (
            ready.json()["checks"]["s3"]["ok"] is False and ready.json()["checks"]["postgres"]["ok"] is True
        )
        assert rows() == {"img1.png", "img2.png"}, "nothing half-written"
    finally:
        deps.start_s3()
    assert (await upload(3, 4)).status_code == 200
    assert rows() == {"img1.png", "img2.png", "img3.png", "img4.png"}

    # --- Postgres down ---------------------------------------------------------------------------
    deps.stop_pg()
    try:
        assert_unavailable(await ingest.get("/v1/datasets", headers=headers))
        assert_unavailable(await upload(5))
        ready = await ingest.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"]["ok"] is False
    finally:
        deps.start_pg()
    r = await ingest.get("/v1/datasets", headers=headers)  # the pool reconnects (pre-ping)
    assert r.status_code == 200, r.text
    assert (await upload(5)).status_code == 200
    assert "img5.png" in rows()


async def test_ingest_refuses_to_commit_while_the_broker_is_down(
    deps: Deps, ingest: httpx.AsyncClient
) -> None:
    from shared.internal_auth import internal_headers

    (ws,) = sql(deps, "INSERT INTO workspaces (name) VALUES ('outages-broker') RETURNING id")[0]
    headers = internal_headers(ws)
    r = await ingest.post("/v1/datasets", json={"name": "outages-broker"}, headers=headers)
    assert r.status_code == 201, r.text
    ds = r.json()["id"]

    async def upload(*keys: int) -> httpx.Response:
        files = [("files", (f"img{k}.png", png(k), "image/png")) for k in keys]
        return await ingest.post(f"/v1/datasets/{ds}/rows", files=files, headers=headers)

    def rows() -> set[str]:
        return {k for (k,) in sql(deps, "SELECT global_key FROM data_rows WHERE dataset_id = %s", ds)}

    deps.stop_redis()
    try:
        r = await upload(6)
        assert_unavailable(r)
        ready = await ingest.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
        assert "img6.png" not in rows(), "a row whose follow-up tasks could not be sent was committed"
    finally:
        deps.start_redis()
    assert (await upload(6)).status_code == 200
    assert "img6.png" in rows()
    import redis as redis_client

    broker = redis_client.Redis.from_url(deps.redis_url)
    assert broker.llen("embeddings") > 0, "the follow-up tasks of the uploads are queued"
    broker.close()


def _worker(
    deps: Deps, log: Path, app: str = "services.metrics.worker:app", queue: str = "metrics", **extra: str
) -> subprocess.Popen[bytes]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BLINDSPOT_")}, **deps.env, **extra}
    env["PYTHONPATH"] = str(REPO_ROOT)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                app,
                "worker",
                "-Q",
                queue,
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _until(predicate: Any, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            if predicate():
                return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


async def test_a_run_completes_across_postgres_and_redis_outages(deps: Deps, tmp_path: Path) -> None:
    from celery import Celery

    from shared.celery import make_celery, send
    from shared.contracts.tasks import ComputeRowsPayload, TaskName
    from tests.fixtures.metrics import seed_run

    run = seed_run(deps.db_url, 60, seed=3)
    log = tmp_path / "worker.log"
    worker = _worker(deps, log)
    producer: Celery = make_celery("outage-producer", deps.settings())

    def done() -> int:
        return int(
            sql(deps, "SELECT count(*) FROM row_metrics WHERE model_run_id = %s", run.model_run_id)[0][0]
        )

    try:
        # Postgres goes down with the tasks queued: they fail to connect and retry with backoff.
        deps.stop_pg()
        for i in range(0, 60, 10):
            send(
                producer,
                TaskName.metrics_compute_rows,
                ComputeRowsPayload(model_run_id=run.model_run_id, data_row_ids=run.row_ids[i : i + 10]),
            )
        await _until(lambda: "Retry in" in log.read_text(), 60, "a task to retry", log)
        deps.start_pg()
        await _until(lambda: done() == 60, 90, "every row's metrics after Postgres came back", log)

        # Redis goes down (the broker): the worker reconnects; work sent after the restart completes.
        deps.stop_redis()
        await asyncio.sleep(2)
        deps.start_redis()
        sql(deps, "DELETE FROM row_metrics WHERE model_run_id = %s", run.model_run_id)
        send(
            producer,
            TaskName.metrics_compute_rows,
            ComputeRowsPayload(model_run_id=run.model_run_id, data_row_ids=run.row_ids),
        )
        await _until(lambda: done() == 60, 90, "the run to complete after Redis came back", log)
        assert worker.poll() is None, "the worker survived the broker restart (shared.celery.RedisTransport)"
        await _until(
            lambda: (
                sql(deps, "SELECT count(*) FROM class_metrics WHERE model_run_id = %s", run.model_run_id)[0][
                    0
                ]
                > 0
            ),
            60,
            "the run's aggregation",
            log,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        producer.close()
    # Each row is stored exactly once (tasks are idempotent upserts), none half-written.
    rows = sql(
        deps,
        "SELECT count(*), count(DISTINCT data_row_id) FROM row_metrics WHERE model_run_id = %s",
        run.model_run_id,
    )[0]
    assert rows == (60, 60)


async def test_an_embedding_run_waits_out_an_s3_outage(
    deps: Deps, ingest: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Images uploaded, then S3 goes down: the embedding tasks retry with backoff and finish after it is back."""
    from shared.internal_auth import internal_headers

    (ws,) = sql(deps, "INSERT INTO workspaces (name) VALUES ('outages-s3-run') RETURNING id")[0]
    headers = internal_headers(ws)
    r = await ingest.post("/v1/datasets", json={"name": "s3-run"}, headers=headers)
    assert r.status_code == 201, r.text
    ds = r.json()["id"]
    files = [("files", (f"run{k}.png", png(k + 20), "image/png")) for k in range(4)]
    assert (await ingest.post(f"/v1/datasets/{ds}/rows", files=files, headers=headers)).status_code == 200

    def embedded() -> int:
        return int(
            sql(deps, "SELECT count(*) FROM data_rows WHERE dataset_id = %s AND embedded_at IS NOT NULL", ds)[
                0
            ][0]
        )

    log = tmp_path / "search-worker.log"
    deps.stop_s3()
    worker = _worker(
        deps,
        log,
        app="services.search.worker:app",
        queue="embeddings",
        BLINDSPOT_QDRANT__PATH=str(tmp_path / "qdrant"),
        BLINDSPOT_SEARCH__INPROCESS_WORKER="false",
        BLINDSPOT_SEARCH__ONNX_THREADS="1",
    )
    try:
        await _until(
            lambda: "Retry in" in log.read_text(), 90, "an embedding task to retry while S3 is down", log
        )
        assert embedded() == 0, "nothing was marked embedded without its image"
        deps.start_s3()
        await _until(lambda: embedded() == 4, 90, "every row embedded after S3 came back", log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        if deps.s3 is None or not deps.s3.alive():
            deps.start_s3()
