"""With the embedded store the search API consumes queue "embeddings" itself: a task sent through the
real broker (Redis) is embedded, committed, re-queues the rows past ``task_rows``, and chains the slice
matching."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from services.search.main import create_app
from services.search.worker import app as celery_app
from shared.adapters.storage import ObjectStore
from shared.adapters.vectors import open_vector_store
from shared.celery import send
from shared.contracts.tasks import EmbedRowsPayload, TaskName
from shared.db.models import DataRow, Dataset, Slice, SliceMember, Workspace
from shared.settings import DatabaseSettings, QdrantSettings, SearchSettings, Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def private_broker() -> Iterator[str]:
    """The worker app on Redis keys of its own (a unique key prefix), so a running stack or another
    test session (same Redis, same queue names) neither steals this test's tasks nor hands it theirs."""
    old = dict(celery_app.conf.broker_transport_options or {})
    prefix = f"bs-search-test-{uuid.uuid4().hex[:8]}:"
    celery_app.conf.broker_transport_options = {**old, "global_keyprefix": prefix}
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield prefix
    finally:
        celery_app.conf.broker_transport_options = old
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        r = redis.Redis.from_url(celery_app.conf.broker_url)
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)


def test_api_process_consumes_embeddings_queue(
    private_broker: str,
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    photos: dict[str, bytes],
    object_store: ObjectStore,
) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        database=DatabaseSettings(url=db_url),
        qdrant=QdrantSettings(path=tmp_path / "q", image_collection=f"i_{tag}", object_collection=f"o_{tag}"),
        search=SearchSettings(task_rows=1),  # two rows: the first task embeds one and re-queues the other
    )
    keys = {f"inproc/{tag}/a.png": "chelsea", f"inproc/{tag}/b.png": "coffee"}
    for key, photo in keys.items():
        object_store.put(key, photos[photo], "image/png")
    a_key, b_key = keys
    with Session(engine) as s:
        ws = Workspace(name=f"inproc-{tag}")
        s.add(ws)
        s.flush()
        ds = Dataset(workspace_id=ws.id, name="d")
        s.add(ds)
        s.flush()
        rows = [
            DataRow(
                workspace_id=ws.id,
                dataset_id=ds.id,
                global_key=k,
                object_key=k,
                width=451,
                height=300,
                sha256=k,
                metadata_={"camera": "front"} if k == a_key else {},
            )
            for k in (a_key, b_key)
        ]
        s.add_all(rows)
        s.add(Slice(workspace_id=ws.id, name="front", filter={"metadata": {"camera": "front"}}))
        s.commit()
        ws_id, ids = ws.id, [r.id for r in rows]
    store = open_vector_store(settings.qdrant, backend="memory")
    app = create_app(settings, store=store, blobs=object_store, inprocess_worker=True)
    try:
        with TestClient(app):
            send(
                celery_app, TaskName.search_embed_rows, EmbedRowsPayload(workspace_id=ws_id, data_row_ids=ids)
            )
            deadline = time.monotonic() + 90
            members: list[int] = []
            embedded: list[object] = []
            while time.monotonic() < deadline:
                with Session(engine) as s:
                    embedded = list(s.scalars(select(DataRow.embedded_at).where(DataRow.id.in_(ids))))
                    members = list(
                        s.scalars(
                            select(SliceMember.data_row_id)
                            .join(Slice, Slice.id == SliceMember.slice_id)
                            .where(Slice.workspace_id == ws_id)
                        )
                    )
                if all(embedded) and members:
                    break
                time.sleep(0.5)
            assert all(embedded), "rows were not embedded by the in-process worker"
            assert members == [ids[0]], "match_slices did not follow the embedding"
            assert store.count(settings.qdrant.image_collection, workspace_id=ws_id) == 2
    finally:
        store.close()
        with Session(engine) as s:
            s.execute(delete(Workspace).where(Workspace.id == ws_id))
            s.commit()
