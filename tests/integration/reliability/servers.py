"""Real services for the reliability tests: the ingest app served by uvicorn on a free loopback port.

Settings point at the test session's Postgres, SeaweedFS and a Redis broker DB with a key prefix of its
own, so the tasks the app publishes never reach another test's queue.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy import create_engine, text

from services.ingest.main import create_app
from shared.settings import (
    CelerySettings,
    DatabaseSettings,
    IngestSettings,
    LimitSettings,
    RedisSettings,
    S3Settings,
    Settings,
)

REDIS_URL = os.environ.get("BLINDSPOT_TEST_RELIABILITY_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest_settings(db_url: str, s3: S3Settings, *, prefix: str | None = None) -> Settings:
    return Settings(
        env="test",
        database=DatabaseSettings(url=db_url, pool_size=4),
        redis=RedisSettings(url=REDIS_URL),
        celery=CelerySettings(key_prefix=prefix or f"bs-rel-{uuid.uuid4().hex[:10]}:"),
        s3=s3,
        limits=LimitSettings(
            max_image_pixels=4_000_000,
            max_image_bytes=4_000_000,
            max_request_bytes=64_000_000,
            max_json_bytes=1_000_000,
        ),
        ingest=IngestSettings(workers=2, async_import_bytes=2_000_000),
    )


def new_workspace(db_url: str, name: str) -> int:
    eng = create_engine(db_url)
    try:
        with eng.begin() as conn:
            return int(
                conn.execute(
                    text("INSERT INTO workspaces (name) VALUES (:n) RETURNING id"),
                    {"n": f"{name}-{uuid.uuid4().hex[:8]}"},
                ).scalar_one()
            )
    finally:
        eng.dispose()


@contextmanager
def serve_ingest(settings: Settings) -> Iterator[str]:
    """The ingest app (lifespan included) on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("ingest app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
