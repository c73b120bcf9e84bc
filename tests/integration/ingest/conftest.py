"""The ingest app over httpx's ASGI transport, against real Postgres, SeaweedFS and Redis.

Every test gets its own workspace (the app commits for real). Tasks go to a real Redis broker
(database 14, keys prefixed per test worker, purged around each test); ``sent`` records what the app published, after commit.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from celery.signals import after_task_publish
from PIL import Image
from sqlalchemy import Engine, text

from services.ingest.main import create_app
from shared.contracts.tasks import Queue
from shared.internal_auth import internal_headers
from shared.settings import (
    DatabaseSettings,
    IngestSettings,
    LimitSettings,
    RedisSettings,
    S3Settings,
    Settings,
)

# Redis database 14, and a key prefix per xdist worker: queue assertions never see other tests' tasks.
REDIS_URL = os.environ.get("BLINDSPOT_TEST_INGEST_REDIS_URL", "redis://127.0.0.1:6379/14")
PREFIX = f"bs-ingest-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}:"
_counter = itertools.count()


@dataclass
class Sent:
    """Tasks the app published during the test: (task name, kwargs)."""

    tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [n for n, _ in self.tasks]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [k for n, k in self.tasks if n == name]


@pytest.fixture(scope="session")
def ingest_settings(db_url: str, s3_settings: S3Settings) -> Settings:
    return Settings(
        env="test",
        database=DatabaseSettings(url=db_url, pool_size=4),
        redis=RedisSettings(url=REDIS_URL),
        s3=s3_settings,
        limits=LimitSettings(
            max_image_pixels=4_000_000, max_image_bytes=4_000_000, max_request_bytes=64_000_000
        ),
        ingest=IngestSettings(workers=4, async_import_bytes=2_000_000, metrics_chunk_rows=2),
    )


@pytest.fixture(scope="session")
async def ingest_app(ingest_settings: Settings) -> AsyncIterator[Any]:
    app = create_app(ingest_settings)
    async with app.router.lifespan_context(app):
        celery = app.state.ctx.celery
        celery.conf.broker_transport_options = {
            **celery.conf.broker_transport_options,
            "global_keyprefix": PREFIX,
        }
        yield app


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*[PREFIX + q.value for q in Queue])
    yield client
    client.delete(*[PREFIX + q.value for q in Queue])
    client.close()


@pytest.fixture
def sent(broker: redis.Redis) -> Iterator[Sent]:
    record = Sent()

    def hook(sender: str | None = None, body: Any = None, **_: Any) -> None:
        kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 else {}
        record.tasks.append((str(sender), dict(kwargs)))

    after_task_publish.connect(hook, weak=False)
    yield record
    after_task_publish.disconnect(hook)


@pytest.fixture
def workspace(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                text("INSERT INTO workspaces (name) VALUES (:n) RETURNING id"),
                {"n": f"ingest-{os.getpid()}-{next(_counter)}"},
            ).scalar_one()
        )


@pytest.fixture
async def client(ingest_app: Any, workspace: int) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ingest_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ingest", headers=internal_headers(workspace), timeout=60
    ) as c:
        yield c


def image_bytes(
    w: int = 64, h: int = 48, color: tuple[int, int, int] = (200, 10, 10), fmt: str = "JPEG"
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), color).save(out, fmt)
    return out.getvalue()


def counts(engine: Engine, workspace: int) -> dict[str, int]:
    """Row/box counts of a workspace: the 'database unchanged' check."""
    q = {
        "rows": "SELECT count(*) FROM data_rows WHERE workspace_id = :ws",
        "annotations": "SELECT count(*) FROM annotations WHERE workspace_id = :ws",
        "predictions": "SELECT count(*) FROM predictions p JOIN model_runs r ON r.id = p.model_run_id"
        " WHERE r.workspace_id = :ws",
        "classes": "SELECT count(*) FROM classes WHERE workspace_id = :ws",
        "run_rows": "SELECT count(*) FROM model_run_rows m JOIN model_runs r ON r.id = m.model_run_id"
        " WHERE r.workspace_id = :ws",
        "sum_num_annotations": "SELECT coalesce(sum(num_annotations), 0) FROM data_rows WHERE workspace_id = :ws",
    }
    with engine.connect() as conn:
        return {k: int(conn.execute(text(v), {"ws": workspace}).scalar_one()) for k, v in q.items()}


async def make_dataset(client: httpx.AsyncClient, name: str = "ds") -> int:
    r = await client.post("/v1/datasets", json={"name": name, "description": ""})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def upload(client: httpx.AsyncClient, dataset_id: int, files: dict[str, bytes]) -> httpx.Response:
    return await client.post(
        f"/v1/datasets/{dataset_id}/rows",
        files=[("files", (k, v, "application/octet-stream")) for k, v in files.items()],
        data={"global_keys": list(files)},
    )
