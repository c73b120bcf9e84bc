"""The demo stack for the browser tests: the real gateway and search apps (uvicorn on free ports, in
threads) over the per-worker test database seeded by ``seed.py``, images and thumbnails in a real S3
server (the session's SeaweedFS, tests/fixtures/s3.py), and image embeddings
from the real ONNX embedder in an embedded Qdrant store (the search service's own indexing code)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from shared.adapters.storage import ObjectStore
from shared.adapters.vectors import open_vector_store
from shared.settings import QdrantSettings, S3Settings, Settings
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


class _Server:
    """An ASGI app served by uvicorn in a daemon thread on a free local port."""

    def __init__(self, app: Any, name: str) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.thread.name} did not start (see the log above)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def e2e_s3(s3_settings: S3Settings) -> S3Settings:
    """The session's SeaweedFS (tests/fixtures/s3.py) with a bucket of our own."""
    s3 = s3_settings.model_copy(update={"bucket": f"e2e-{uuid.uuid4().hex[:8]}"})
    ObjectStore(s3).ensure_bucket()
    return s3


@pytest.fixture(scope="session")
def demo_stack(
    db_url: str, engine: Engine, e2e_s3: S3Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    from services.gateway.main import create_app as gateway_app
    from services.search.embedder import OnnxEmbedder
    from services.search.indexing import embed_rows, ensure_collections
    from services.search.main import create_app as search_app

    base = Settings(
        env="test",
        database={"url": db_url},  # type: ignore[arg-type]
        s3=e2e_s3,
        qdrant=QdrantSettings(path=tmp_path_factory.mktemp("qdrant")),
    )
    store = ObjectStore(base.s3)
    data = seed(engine, store, base.secret_key.get_secret_value())

    vectors = open_vector_store(base.qdrant)
    ensure_collections(vectors, base)
    embedder = OnnxEmbedder(base.models.embedder_onnx)
    with Session(engine) as session, session.begin():
        ids = [r.id for r in data.rows]
        embed_rows(session, vectors, lambda: embedder, store, base, data.workspace_id, ids)

    search = _Server(
        search_app(base, store=vectors, blobs=store, sender=lambda *_: None, inprocess_worker=False),
        "e2e-search",
    ).start()
    settings = base.model_copy(update={"services": base.services.model_copy(update={"search": search.url})})
    gateway = _Server(gateway_app(settings), "e2e-gateway").start()
    yield DemoStack(base_url=gateway.url, settings=settings, data=data)
    gateway.stop()
    search.stop()
    vectors.close()
