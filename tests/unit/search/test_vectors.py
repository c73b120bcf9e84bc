"""The vector adapter behaves the same on every backend available (server only with a URL)."""

from __future__ import annotations

import numpy as np
import pytest

from services.search.domain import IMAGE_INDEXES, OBJECT_INDEXES, object_point_id
from shared.adapters.vectors import Cond, VectorFilter, VectorStore
from shared.errors import DependencyUnavailable
from shared.settings import QdrantSettings

DIM = 16


def _unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _load(store: VectorStore, n: int = 40) -> np.ndarray:
    store.ensure_collection("images", DIM, IMAGE_INDEXES)
    v = _unit(n)
    payloads = [
        {
            "workspace_id": 1 if i < n // 2 else 2,
            "dataset_id": 10 + i % 2,
            "data_row_id": i + 1,
            "labeled": int(i % 3 == 0),
            "classes": ["cat"] if i % 4 == 0 else ["dog", "car"],
            "splits": [f"7:{'train' if i % 2 else 'validation'}"],
            "meta": {"camera": "front" if i % 5 == 0 else "rear", "night": "true" if i % 2 else "false"},
        }
        for i in range(n)
    ]
    store.upsert("images", list(range(1, n + 1)), v, payloads)
    return v


def test_upsert_is_idempotent_and_workspace_scoped(vector_store: VectorStore) -> None:
    v = _load(vector_store)
    _load(vector_store)  # same ids again: replaced, not duplicated
    assert vector_store.optimize("images", min_unindexed=10**9) is False  # too few unindexed points
    vector_store.optimize("images")
    assert vector_store.count("images", workspace_id=1) == 20
    assert vector_store.count("images", workspace_id=2) == 20
    assert vector_store.count("images", workspace_id=3) == 0
    # Searching with workspace 1 never returns a workspace-2 point, even with the exact vector of one.
    hits = vector_store.search("images", v[30], workspace_id=1, limit=40)[0]
    assert hits and all(h.payload["workspace_id"] == 1 for h in hits)
    assert 31 not in {h.id for h in hits}
    assert vector_store.search("images", v[30], workspace_id=2, limit=1)[0][0].id == 31
    # retrieve drops points of other workspaces
    got = vector_store.retrieve("images", [1, 2, 31], workspace_id=1)
    assert sorted(int(r.id) for r in got) == [1, 2]
    np.testing.assert_allclose(got[0].vector, v[0], atol=1e-5)


def test_filters_and_offsets(vector_store: VectorStore) -> None:
    v = _load(vector_store)
    q = v[0]

    def ids(f: VectorFilter, **kw: object) -> set[int]:
        return {
            int(h.id) for h in vector_store.search("images", q, workspace_id=1, filter=f, limit=40, **kw)[0]
        }  # type: ignore[arg-type]

    assert ids(VectorFilter(must=(Cond("labeled", (0,)),))) == {i + 1 for i in range(20) if i % 3 != 0}
    assert ids(VectorFilter(must=(Cond("classes", ("cat", "bird")),))) == {
        i + 1 for i in range(20) if i % 4 == 0
    }
    assert ids(VectorFilter(must=(Cond("splits", ("7:validation",)),))) == {
        i + 1 for i in range(20) if i % 2 == 0
    }
    assert ids(VectorFilter(must=(Cond("meta.camera", ("front",)),))) == {1, 6, 11, 16}
    assert ids(VectorFilter(must=(Cond("meta.night", ("true",)), Cond("dataset_id", (11,))))) == {
        i + 1 for i in range(20) if i % 2
    }
    assert ids(VectorFilter(must_not=(Cond("dataset_id", (10,)),))) == {i + 1 for i in range(20) if i % 2}
    assert ids(VectorFilter(ids=(1, 2, 3, 35))) == {1, 2, 3}
    # exact search ranks like numpy; offset pages continue the ranking
    full = vector_store.search("images", q, workspace_id=1, limit=20, exact=True)[0]
    expected = np.argsort(-(v[:20] @ q))[:20] + 1
    assert [int(h.id) for h in full] == expected.tolist()
    page2 = vector_store.search("images", q, workspace_id=1, limit=5, offset=5, exact=True)[0]
    assert [h.id for h in page2] == [h.id for h in full[5:10]]
    above = vector_store.search("images", q, workspace_id=1, limit=20, score_threshold=0.2)[0]
    assert all(h.score >= 0.2 for h in above) and len(above) == sum(float(s) >= 0.2 for s in v[:20] @ q)


def test_batch_search_and_payload_updates(vector_store: VectorStore) -> None:
    v = _load(vector_store)
    out = vector_store.search("images", v[:3], workspace_id=1, limit=2)
    assert [r[0].id for r in out] == [1, 2, 3]
    vector_store.set_payload("images", [2], {"labeled": 1})
    f = VectorFilter(must=(Cond("labeled", (1,)),))
    assert 2 in {h.id for h in vector_store.search("images", v[1], workspace_id=1, filter=f, limit=40)[0]}
    vector_store.delete("images", [2])
    assert vector_store.retrieve("images", [2], workspace_id=1) == []


def test_uuid_point_ids(vector_store: VectorStore) -> None:
    vector_store.ensure_collection("objects", DIM, OBJECT_INDEXES)
    pid = object_point_id(3, "pred", 99)
    assert pid == object_point_id(3, "pred", 99) != object_point_id(3, "gt", 99)
    vector_store.upsert("objects", [pid], _unit(1), [{"workspace_id": 5, "data_row_id": 1}])
    assert str(vector_store.retrieve("objects", [pid], workspace_id=5)[0].id) == pid
    assert vector_store.retrieve("objects", [pid], workspace_id=6) == []


@pytest.mark.parametrize("backend", ["local", "edge"])
def test_embedded_store_is_single_process(backend: str, tmp_path: object) -> None:
    from pathlib import Path

    from shared.adapters.vectors import open_vector_store

    settings = QdrantSettings(path=Path(str(tmp_path)) / "q")
    first = open_vector_store(settings, backend=backend)  # type: ignore[arg-type]
    try:
        with pytest.raises(DependencyUnavailable, match="single-process"):
            open_vector_store(settings, backend=backend)  # type: ignore[arg-type]
    finally:
        first.close()
    open_vector_store(settings, backend=backend).close()  # type: ignore[arg-type]
