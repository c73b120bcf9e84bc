"""Vector store adapter: one interface, three Qdrant engines.

- ``QdrantStore(QdrantClient(url=...))``: a Qdrant server (production, any number of processes);
  collections are created sharded and replicated as ``Sharding`` says (``BLINDSPOT_QDRANT__SHARD_NUMBER``,
  ``__REPLICATION_FACTOR``, ``__WRITE_CONSISTENCY_FACTOR``) with a payload index per filtered field.
- ``QdrantStore(QdrantClient(path=...))``: qdrant-client's local mode (pure Python, exact search;
  slow past ~20k points; ``location=":memory:"`` in tests).
- ``EdgeStore(path)``: qdrant-edge-py, Qdrant's own engine in-process (HNSW, payload indexes), one
  shard folder per collection.

Vectors are float32 numpy arrays, cosine distance. Point ids are unsigned ints or UUID strings chosen
by the caller deterministically, so re-running an upsert replaces rather than duplicates.

**Every search, count and scroll takes a ``workspace_id`` and always filters on it**: the tenant
boundary is part of the signature, not something a caller can forget.

The embedded engines are single-process: ``open_vector_store`` takes an exclusive file lock on the
folder and fails fast, naming the holder, when another process already has it open (see docs/search.md).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from shared.errors import ConfigurationError, DependencyUnavailable
from shared.logging import get_logger
from shared.settings import QdrantSettings

log = get_logger(__name__)

PointId = int | str
Value = str | int | bool
# No "bool": qdrant-edge-py 0.9 never matches a MatchValue(True/False); store flags as 0/1 integers.
IndexKind = Literal["keyword", "integer"]
WORKSPACE_KEY = "workspace_id"


@dataclass(frozen=True)
class Sharding:
    """How a Qdrant server lays out a new collection (fixed at creation, except replication)."""

    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1

    @classmethod
    def from_settings(cls, settings: QdrantSettings) -> Sharding:
        return cls(settings.shard_number, settings.replication_factor, settings.write_consistency_factor)


@dataclass(frozen=True)
class Cond:
    """Payload ``key`` matches one of ``values`` (for a list-valued payload: any element does)."""

    key: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class VectorFilter:
    must: tuple[Cond, ...] = ()
    must_not: tuple[Cond, ...] = ()
    ids: tuple[PointId, ...] | None = None  # restrict to these point ids


@dataclass(frozen=True)
class Hit:
    id: PointId
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    id: PointId
    vector: np.ndarray | None
    payload: dict[str, Any]


class VectorStore(Protocol):
    backend: str

    def ensure_collection(self, name: str, dim: int, indexes: Mapping[str, IndexKind]) -> None: ...

    def upsert(
        self, name: str, ids: Sequence[PointId], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None: ...

    def set_payload(self, name: str, ids: Sequence[PointId], payload: dict[str, Any]) -> None: ...

    def delete(self, name: str, ids: Sequence[PointId]) -> None: ...

    def search(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        workspace_id: int,
        filter: VectorFilter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[list[Hit]]:
        """One list of hits per row of ``vectors`` ([m, d]), best first."""
        ...

    def retrieve(
        self, name: str, ids: Sequence[PointId], *, workspace_id: int, with_vectors: bool = True
    ) -> list[Record]:
        """The points among ``ids`` that belong to ``workspace_id`` (others are silently absent)."""
        ...

    def count(self, name: str, *, workspace_id: int, filter: VectorFilter | None = None) -> int: ...

    def optimize(self, name: str, *, min_unindexed: int = 0) -> bool:
        """Build indexes (HNSW in Edge; a no-op elsewhere, where the server or the scan needs none) when
        at least ``min_unindexed`` points are not indexed yet. Returns whether it ran."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def hnsw_ef(k: int) -> int:
    """HNSW beam width for a top-``k`` query: 4k, at least 128 (Qdrant's default is 100 whatever k;
    at k = 50 over filtered 1280-d embeddings that loses ~3% recall, see docs/search.md)."""
    return max(128, 4 * k)


def _with_workspace(f: VectorFilter | None, workspace_id: int) -> VectorFilter:
    f = f or VectorFilter()
    return VectorFilter(must=(Cond(WORKSPACE_KEY, (workspace_id,)), *f.must), must_not=f.must_not, ids=f.ids)


def _pid(x: Any) -> PointId:
    """Point ids as the caller gave them: ints stay ints, UUIDs come back as canonical strings."""
    return x if isinstance(x, int) else str(x)


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2:
        raise ValueError(f"vectors must be [n, d], got shape {v.shape}")
    return v


# --------------------------------------------------------------------------------------------------
# qdrant-client: server or local mode
# --------------------------------------------------------------------------------------------------


class _Serialized:
    """Calls into a non-thread-safe client one at a time (qdrant-client's local mode is plain Python
    dicts: the API's request threads and the in-process worker thread share it)."""

    def __init__(self, client: Any) -> None:
        self._wrapped = client
        self._lock = threading.RLock()

    def __getattr__(self, item: str) -> Any:
        attr = getattr(self._wrapped, item)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class QdrantStore:
    """A Qdrant server or qdrant-client's local mode behind the one interface."""

    def __init__(self, client: Any, *, backend: str, sharding: Sharding | None = None) -> None:
        from qdrant_client import models

        self._client = _Serialized(client) if backend == "local" else client
        self._m = models
        self.backend = backend
        self.sharding = sharding or Sharding()

    def _filter(self, f: VectorFilter) -> Any:
        m = self._m

        def cond(c: Cond) -> Any:
            if len(c.values) == 1:
                return m.FieldCondition(key=c.key, match=m.MatchValue(value=c.values[0]))
            return m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.values)))

        must: list[Any] = [cond(c) for c in f.must]
        if f.ids is not None:
            must.append(m.HasIdCondition(has_id=list(f.ids)))
        return m.Filter(must=must or None, must_not=[cond(c) for c in f.must_not] or None)

    def ensure_collection(self, name: str, dim: int, indexes: Mapping[str, IndexKind]) -> None:
        """Create the collection if missing (on a server: sharded, replicated) and every payload index.

        Safe to call from several processes at once: a collection another process created between the
        existence check and the create is accepted. An existing collection keeps its shard count (Qdrant
        cannot change it); a mismatch with the settings is logged.
        """
        m = self._m
        vectors = m.VectorParams(size=dim, distance=m.Distance.COSINE)
        if self.backend == "local":  # local mode: no shards, no payload indexes (it scans)
            if not self._client.collection_exists(name):
                self._client.create_collection(name, vectors_config=vectors)
            return
        sh = self.sharding
        if not self._client.collection_exists(name):
            try:
                self._client.create_collection(
                    name,
                    vectors_config=vectors,
                    shard_number=sh.shard_number,
                    replication_factor=sh.replication_factor,
                    write_consistency_factor=sh.write_consistency_factor,
                )
            except Exception:
                if not self._client.collection_exists(name):
                    raise
        schema = {
            "keyword": m.PayloadSchemaType.KEYWORD,
            "integer": m.PayloadSchemaType.INTEGER,
        }
        info = self._client.get_collection(name)
        layout = info.config.params
        if layout.shard_number not in (None, sh.shard_number):
            log.warning(
                "qdrant collection keeps its shard count",
                collection=name,
                shard_number=layout.shard_number,
                configured=sh.shard_number,
                hint="shards are fixed at creation: re-create the collection (re-embed) to change them",
            )
        existing = info.payload_schema or {}
        for key, kind in indexes.items():
            if key in existing:
                continue
            if key == WORKSPACE_KEY:
                # Matched by value only, never by range. (Qdrant's is_tenant flag exists for keyword and
                # uuid indexes only, and the tenant key is an integer here.)
                params: Any = m.IntegerIndexParams(type=m.IntegerIndexType.INTEGER, lookup=True, range=False)
            else:
                params = schema[kind]
            self._client.create_payload_index(name, field_name=key, field_schema=params, wait=True)

    def upsert(
        self, name: str, ids: Sequence[PointId], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        v = _as_matrix(vectors)
        if not (len(ids) == len(v) == len(payloads)):
            raise ValueError("ids, vectors and payloads must have the same length")
        if not ids:
            return
        self._client.upsert(
            name,
            points=self._m.Batch(ids=list(ids), vectors=v.tolist(), payloads=list(payloads)),
            wait=True,
        )

    def set_payload(self, name: str, ids: Sequence[PointId], payload: dict[str, Any]) -> None:
        if ids:
            self._client.set_payload(name, payload=payload, points=list(ids), wait=True)

    def delete(self, name: str, ids: Sequence[PointId]) -> None:
        if ids:
            self._client.delete(name, points_selector=self._m.PointIdsList(points=list(ids)), wait=True)

    def search(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        workspace_id: int,
        filter: VectorFilter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[list[Hit]]:
        m = self._m
        flt = self._filter(_with_workspace(filter, workspace_id))
        params = None
        if self.backend != "local":
            params = m.SearchParams(exact=True) if exact else m.SearchParams(hnsw_ef=hnsw_ef(limit + offset))
        requests = [
            m.QueryRequest(
                query=row.tolist(),
                filter=flt,
                limit=limit,
                offset=offset,
                score_threshold=score_threshold,
                with_payload=True,
                params=params,
            )
            for row in _as_matrix(vectors)
        ]
        if not requests:
            return []
        responses = self._client.query_batch_points(name, requests=requests)
        return [
            [Hit(id=_pid(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in r.points]
            for r in responses
        ]

    def retrieve(
        self, name: str, ids: Sequence[PointId], *, workspace_id: int, with_vectors: bool = True
    ) -> list[Record]:
        if not ids:
            return []
        recs = self._client.retrieve(name, ids=list(ids), with_payload=True, with_vectors=with_vectors)
        out = []
        for r in recs:
            payload = dict(r.payload or {})
            if payload.get(WORKSPACE_KEY) != workspace_id:
                continue
            vec = np.asarray(r.vector, dtype=np.float32) if with_vectors and r.vector is not None else None
            out.append(Record(id=_pid(r.id), vector=vec, payload=payload))
        return out

    def count(self, name: str, *, workspace_id: int, filter: VectorFilter | None = None) -> int:
        flt = self._filter(_with_workspace(filter, workspace_id))
        return int(self._client.count(name, count_filter=flt, exact=True).count)

    def optimize(self, name: str, *, min_unindexed: int = 0) -> bool:
        return False

    def ping(self) -> None:
        try:
            self._client.get_collections()
        except Exception as exc:
            raise DependencyUnavailable(f"Qdrant ({self.backend}) does not answer: {exc}") from exc

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------------------------------
# qdrant-edge-py
# --------------------------------------------------------------------------------------------------


class EdgeStore:
    """qdrant-edge-py: one ``EdgeShard`` per collection under ``root/<name>``."""

    backend = "edge"

    def __init__(self, root: Path) -> None:
        import qdrant_edge

        self._e = qdrant_edge
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _shard(self, name: str) -> Any:
        shard = self._shards.get(name)
        if shard is None:
            raise KeyError(f"collection {name!r} is not open; call ensure_collection first")
        return shard

    def _filter(self, f: VectorFilter) -> Any:
        e = self._e

        def cond(c: Cond) -> Any:
            if len(c.values) == 1:
                return e.FieldCondition(key=c.key, match=e.MatchValue(c.values[0]))
            return e.FieldCondition(key=c.key, match=e.MatchAny(list(c.values)))

        must: list[Any] = [cond(c) for c in f.must]
        if f.ids is not None:
            must.append(e.HasIdCondition(set(f.ids)))
        return e.Filter(must=must or None, must_not=[cond(c) for c in f.must_not] or None)

    def ensure_collection(self, name: str, dim: int, indexes: Mapping[str, IndexKind]) -> None:
        e = self._e
        with self._lock:
            if name in self._shards:
                return
            path = self._root / name
            config = e.EdgeConfig(vectors=e.EdgeVectorParams(size=dim, distance=e.Distance.Cosine))
            if path.exists() and any(path.iterdir()):
                shard = e.EdgeShard.load(str(path))
            else:
                shard = e.EdgeShard.create(str(path), config)
            schema = {
                "keyword": e.PayloadSchemaType.Keyword,
                "integer": e.PayloadSchemaType.Integer,
            }
            existing = set(shard.info().payload_schema)
            for key, kind in indexes.items():
                if key not in existing:
                    shard.update(e.UpdateOperation.create_field_index(key, schema[kind]))
            self._shards[name] = shard

    def upsert(
        self, name: str, ids: Sequence[PointId], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        v = _as_matrix(vectors)
        if not (len(ids) == len(v) == len(payloads)):
            raise ValueError("ids, vectors and payloads must have the same length")
        if not ids:
            return
        e = self._e
        points = [e.Point(i, row.tolist(), p) for i, row, p in zip(ids, v, payloads, strict=True)]
        with self._lock:
            self._shard(name).update(e.UpdateOperation.upsert_points(points))

    def set_payload(self, name: str, ids: Sequence[PointId], payload: dict[str, Any]) -> None:
        if ids:
            with self._lock:
                self._shard(name).update(self._e.UpdateOperation.set_payload(list(ids), payload))

    def delete(self, name: str, ids: Sequence[PointId]) -> None:
        if ids:
            with self._lock:
                self._shard(name).update(self._e.UpdateOperation.delete_points(list(ids)))

    def search(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        workspace_id: int,
        filter: VectorFilter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[list[Hit]]:
        e = self._e
        flt = self._filter(_with_workspace(filter, workspace_id))
        params = e.SearchParams(exact=True) if exact else e.SearchParams(hnsw_ef=hnsw_ef(limit + offset))
        queries = [
            e.QueryRequest(
                limit=limit,
                offset=offset,
                query=e.Query.Nearest(row.tolist()),
                filter=flt,
                score_threshold=score_threshold,
                with_payload=True,
                params=params,
            )
            for row in _as_matrix(vectors)
        ]
        if not queries:
            return []
        shard = self._shard(name)
        results = (
            shard.query_batch(e.QueryBatchRequest(queries)) if len(queries) > 1 else [shard.query(queries[0])]
        )
        return [
            [Hit(id=_pid(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in r]
            for r in results
        ]

    def retrieve(
        self, name: str, ids: Sequence[PointId], *, workspace_id: int, with_vectors: bool = True
    ) -> list[Record]:
        if not ids:
            return []
        recs = self._shard(name).retrieve(list(ids), with_payload=True, with_vector=with_vectors)
        out = []
        for r in recs:
            payload = dict(r.payload or {})
            if payload.get(WORKSPACE_KEY) != workspace_id:
                continue
            vec = r.vector
            if isinstance(vec, dict):
                vec = vec.get("")
            arr = np.asarray(vec, dtype=np.float32) if with_vectors and vec is not None else None
            out.append(Record(id=_pid(r.id), vector=arr, payload=payload))
        return out

    def count(self, name: str, *, workspace_id: int, filter: VectorFilter | None = None) -> int:
        e = self._e
        flt = self._filter(_with_workspace(filter, workspace_id))
        return int(self._shard(name).count(e.CountRequest(filter=flt, exact=True)))

    def optimize(self, name: str, *, min_unindexed: int = 0) -> bool:
        with self._lock:
            shard = self._shard(name)
            if min_unindexed > 0:
                info = shard.info()
                if info.points_count - info.indexed_vectors_count < min_unindexed:
                    return False
            return bool(shard.optimize())

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()


# --------------------------------------------------------------------------------------------------
# Opening a store from settings
# --------------------------------------------------------------------------------------------------


class _FolderLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.blindspot.lock`` held while the store is open."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".blindspot.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise DependencyUnavailable(
                f"the embedded vector store at {folder} is open in pid {holder}; embedded Qdrant is"
                " single-process: run the search API and its worker as one process, or set"
                " BLINDSPOT_QDRANT__URL to a Qdrant server"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class _Locked:
    """A store plus the folder lock it releases on close."""

    def __init__(self, store: QdrantStore | EdgeStore, lock: _FolderLock) -> None:
        self._store = store
        self._lock = lock
        self.backend = store.backend

    def __getattr__(self, item: str) -> Any:
        return getattr(self._store, item)

    def close(self) -> None:
        try:
            self._store.close()
        finally:
            self._lock.release()


def open_vector_store(
    settings: QdrantSettings, *, backend: Literal["server", "local", "edge", "memory"] | None = None
) -> VectorStore:
    """The store the settings name: a server when ``url`` is set, else the embedded engine at ``path``.

    ``backend="memory"`` is qdrant-client's in-memory local mode (tests, benchmarks).
    """
    from qdrant_client import QdrantClient

    chosen = backend or ("server" if settings.url else settings.embedded_backend)
    if chosen == "server":
        if not settings.url:
            raise ConfigurationError("BLINDSPOT_QDRANT__URL must be set to use a Qdrant server")
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return QdrantStore(
            QdrantClient(url=settings.url, api_key=key, timeout=30),
            backend="server",
            sharding=Sharding.from_settings(settings),
        )
    if chosen == "memory":
        return QdrantStore(QdrantClient(location=":memory:"), backend="local")
    folder = Path(settings.path) / chosen
    lock = _FolderLock(folder)
    try:
        store: QdrantStore | EdgeStore
        if chosen == "local":
            store = QdrantStore(QdrantClient(path=str(folder / "data")), backend="local")
        else:
            store = EdgeStore(folder / "data")
    except BaseException:
        lock.release()
        raise
    return _Locked(store, lock)  # type: ignore[return-value]


__all__ = [
    "Cond",
    "EdgeStore",
    "Hit",
    "QdrantStore",
    "Record",
    "Sharding",
    "VectorFilter",
    "VectorStore",
    "open_vector_store",
]
