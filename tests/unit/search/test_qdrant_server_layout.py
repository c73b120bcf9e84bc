"""Collections on a Qdrant server are created sharded, replicated and with a payload index per filter.

No Qdrant server binary can run here (no PyPI/Debian package ships one; qdrant-client's local mode
ignores shards). So ``QdrantHttp`` below is a small real HTTP server speaking the slice of Qdrant's REST
API that ``ensure_collection`` uses: the real qdrant-client talks to it over a real socket, and the test
asserts on the request bodies as they arrived on the wire (shard_number, replication_factor,
write_consistency_factor, one payload index per filtered field). With ``BLINDSPOT_TEST_QDRANT_URL`` set,
the same layout is also checked on a real server, read back from the collection info.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from services.search.domain import DIM, IMAGE_INDEXES, OBJECT_INDEXES, vector_filter
from services.search.indexing import ensure_collections
from services.search.schemas import RowFilter
from shared.adapters.vectors import VectorStore, open_vector_store
from shared.settings import QdrantSettings, Settings


@dataclass
class Collection:
    params: dict[str, Any]
    indexes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    body: Any


class QdrantHttp:
    """A real HTTP server answering Qdrant's REST calls for collection layout; it records every request.

    ``racing``: collection names another process "creates" between our existence check and our create
    (the first check says missing, the create answers 409, later checks say present).
    """

    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {}
        self.requests: list[Request] = []
        self.racing: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sent(self, method: str, pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def _info(self, c: Collection) -> dict[str, Any]:
        return {
            "status": "green",
            "optimizer_status": "ok",
            "segments_count": 1,
            "points_count": 0,
            "indexed_vectors_count": 0,
            "config": {
                "params": c.params,
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                "optimizer_config": {"default_segment_number": 0, "flush_interval_sec": 5},
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            },
            "payload_schema": {
                k: {"data_type": (s if isinstance(s, str) else s["type"]), "points": 0}
                for k, s in c.indexes.items()
            },
        }

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        m = re.fullmatch(r"/collections/([^/]+)(/exists|/index)?", path)
        if method == "GET" and path == "/":
            return 200, {"title": "qdrant - vector search engine", "version": "1.20.0"}
        if method == "GET" and path == "/collections":
            return 200, {"collections": [{"name": n} for n in self.collections]}
        if m is None:
            return 404, None
        name, tail = m.group(1), m.group(2)
        if method == "GET" and tail == "/exists":
            if name in self.racing:
                self.racing.discard(name)
                self.collections[name] = Collection({"vectors": {"size": DIM, "distance": "Cosine"}})
                return 200, {"exists": False}
            return 200, {"exists": name in self.collections}
        if method == "PUT" and tail is None:
            if name in self.collections:
                return 409, f"Wrong input: Collection `{name}` already exists!"
            self.collections[name] = Collection(dict(body))
            return 200, True
        if method == "GET" and tail is None:
            if name not in self.collections:
                return 404, f"Not found: Collection `{name}` doesn't exist!"
            return 200, self._info(self.collections[name])
        if method == "PUT" and tail == "/index":
            self.collections[name].indexes[body["field_name"]] = body["field_schema"]
            return 200, {"operation_id": len(self.requests), "status": "completed"}
        return 404, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                with outer._lock:
                    outer.requests.append(Request(self.command, path, body))
                    status, result = outer._answer(self.command, path, body)
                if path == "/":  # the version banner is not wrapped in a result
                    payload = result
                elif status == 200:
                    payload = {"result": result, "status": "ok", "time": 0.0}
                else:
                    payload = {"status": {"error": result or "not found"}, "time": 0.0}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


@pytest.fixture
def qdrant_http() -> Iterator[QdrantHttp]:
    server = QdrantHttp()
    yield server
    # qdrant-client asks for the server version on a background thread: let it finish before closing.
    for t in threading.enumerate():
        if "_check_compatibility" in t.name:
            t.join(timeout=10)
    server.close()


def _settings(url: str, **layout: int) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        qdrant=QdrantSettings(
            url=url, image_collection=f"images_{tag}", object_collection=f"objects_{tag}", **layout
        )
    )


LAYOUT = {"shard_number": 4, "replication_factor": 2, "write_consistency_factor": 2}


def test_collections_are_created_sharded_with_a_payload_index_per_filter(qdrant_http: QdrantHttp) -> None:
    settings = _settings(qdrant_http.url, **LAYOUT)
    store = open_vector_store(settings.qdrant)
    try:
        ensure_collections(store, settings)
    finally:
        store.close()
    for name, indexes in (
        (settings.qdrant.image_collection, IMAGE_INDEXES),
        (settings.qdrant.object_collection, OBJECT_INDEXES),
    ):
        [create] = qdrant_http.sent("PUT", f"/collections/{name}")
        assert create.body["shard_number"] == 4
        assert create.body["replication_factor"] == 2
        assert create.body["write_consistency_factor"] == 2
        assert create.body["vectors"] == {"size": DIM, "distance": "Cosine"}
        sent = {
            r.body["field_name"]: r.body["field_schema"]
            for r in qdrant_http.sent("PUT", f"/collections/{name}/index")
        }
        assert set(sent) == set(indexes)
        # The tenant key, on every query: an integer index for exact matches (no range part).
        assert sent["workspace_id"] == {"type": "integer", "lookup": True, "range": False}
        for key, kind in indexes.items():
            if key != "workspace_id":
                assert sent[key] == kind, key


def test_ensure_is_idempotent_and_accepts_a_collection_created_concurrently(qdrant_http: QdrantHttp) -> None:
    settings = _settings(qdrant_http.url, **LAYOUT)
    images = settings.qdrant.image_collection
    qdrant_http.racing.add(images)  # another pod creates it between our check and our create
    store = open_vector_store(settings.qdrant)
    try:
        ensure_collections(store, settings)
        creates = len(qdrant_http.sent("PUT", r"/collections/[^/]+"))
        index_calls = len(qdrant_http.sent("PUT", r"/collections/[^/]+/index"))
        assert creates == 2  # both tried once; the images create answered 409 and was accepted
        assert set(qdrant_http.collections[images].indexes) == set(IMAGE_INDEXES)
        ensure_collections(store, settings)  # second start of the service: nothing is re-created
    finally:
        store.close()
    assert len(qdrant_http.sent("PUT", r"/collections/[^/]+")) == creates
    assert len(qdrant_http.sent("PUT", r"/collections/[^/]+/index")) == index_calls


def test_an_existing_collection_with_other_shards_is_kept_and_logged(qdrant_http: QdrantHttp) -> None:
    before = _settings(qdrant_http.url)
    store = open_vector_store(before.qdrant)
    ensure_collections(store, before)
    store.close()
    after = before.model_copy(update={"qdrant": before.qdrant.model_copy(update={"shard_number": 6})})
    store = open_vector_store(after.qdrant)
    try:
        with capture_logs() as logs:
            ensure_collections(store, after)
    finally:
        store.close()
    warned = [e for e in logs if e["event"] == "qdrant collection keeps its shard count"]
    assert {e["collection"] for e in warned} == {
        before.qdrant.image_collection,
        before.qdrant.object_collection,
    }
    assert all(e["shard_number"] == 1 and e["configured"] == 6 for e in warned)
    assert len(qdrant_http.sent("PUT", r"/collections/[^/]+")) == 2  # created once, never again


@pytest.mark.skipif(not os.environ.get("BLINDSPOT_TEST_QDRANT_URL"), reason="BLINDSPOT_TEST_QDRANT_URL unset")
def test_layout_on_a_real_server() -> None:
    settings = _settings(os.environ["BLINDSPOT_TEST_QDRANT_URL"], shard_number=3)
    store: VectorStore = open_vector_store(settings.qdrant)
    client = store._client  # type: ignore[attr-defined]
    try:
        ensure_collections(store, settings)
        for name, indexes in (
            (settings.qdrant.image_collection, IMAGE_INDEXES),
            (settings.qdrant.object_collection, OBJECT_INDEXES),
        ):
            info = client.get_collection(name)
            assert info.config.params.shard_number == 3
            assert set(info.payload_schema) == set(indexes)
    finally:
        for name in (settings.qdrant.image_collection, settings.qdrant.object_collection):
            client.delete_collection(name)
        store.close()


def test_every_field_a_search_filters_on_is_indexed() -> None:
    """The widest row filter, for both collections: each payload key it filters on has an index
    (``meta.*`` keys are user metadata, open-ended: filtered, not indexed)."""
    f = RowFilter.model_validate(
        {
            "annotation": "any",
            "dataset_ids": [1, 2],
            "model_run_id": 3,
            "splits": ["train"],
            "error_types": ["loc"],
            "class_names": ["cat"],
            "metadata": {"camera": "front"},
        }
    )
    for target, indexes in (("images", IMAGE_INDEXES), ("objects", OBJECT_INDEXES)):
        keys = {c.key for c in vector_filter(f, target=target).must}
        assert "dataset_id" in keys and "meta.camera" in keys
        assert {k for k in keys if not k.startswith("meta.")} <= set(indexes), target
    assert "model_run_id" in OBJECT_INDEXES and "runs" in IMAGE_INDEXES  # the run scope of similar()


def test_write_consistency_cannot_exceed_replication() -> None:
    with pytest.raises(ValidationError, match="WRITE_CONSISTENCY_FACTOR"):
        QdrantSettings(replication_factor=1, write_consistency_factor=2)
    assert QdrantSettings(replication_factor=3, write_consistency_factor=2).write_consistency_factor == 2
