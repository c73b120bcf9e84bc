"""The demo stack for the browser tests: the real gateway app (uvicorn on a free port, in a thread)
over the per-worker test database seeded by ``seed.py``, with images and thumbnails in a real S3 server
(the one the settings name when it answers, else a SeaweedFS started here)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine

from shared.adapters.storage import ObjectStore
from shared.settings import S3Settings, Settings
from tests.e2e.seed import Seeded, seed

pytestmark = pytest.mark.integration


@dataclass
class DemoStack:
    base_url: str
    settings: Settings
    data: Seeded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def e2e_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Settings]:
    """S3 settings with a fresh bucket on a real server."""
    default = Settings().s3
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    if _answers(default.endpoint):
        s3 = default.model_copy(update={"bucket": bucket})
        ObjectStore(s3).ensure_bucket()
        yield s3
        return
    from blindspot.stack import seaweed

    secret = "e2e-secret-key-123"
    handle = seaweed.start(
        Path(tmp_path_factory.mktemp("seaweed")), seaweed.free_port(), "e2e", secret, detach=False
    )
    try:
        yield S3Settings(endpoint=handle.endpoint, access_key="e2e", secret_key=secret, bucket=bucket)  # type: ignore[arg-type]
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def demo_stack(db_url: str, engine: Engine, e2e_s3: S3Settings) -> Iterator[DemoStack]:
    from services.gateway.main import create_app

    settings = Settings(env="test", database={"url": db_url}, s3=e2e_s3)  # type: ignore[arg-type]
    store = ObjectStore(settings.s3)
    data = seed(engine, store, settings.secret_key.get_secret_value())
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="e2e-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start (see the log above)")
        time.sleep(0.05)
    yield DemoStack(base_url=f"http://127.0.0.1:{port}", settings=settings, data=data)
    server.should_exit = True
    thread.join(timeout=10)
