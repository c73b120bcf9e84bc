"""The similarity half of the fix-the-errors loop against Postgres and every vector backend here.

Real photos, the real ONNX model, real Postgres; the HTTP API is driven through FastAPI's TestClient
with the test's rolled-back session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.search import indexing, projections, service
from services.search.api.deps import get_session
from services.search.main import create_app
from shared.adapters.storage import ObjectStore
from shared.adapters.vectors import VectorStore
from shared.contracts.tasks import TaskName
from shared.db.models import (
    Annotation,
    DataRow,
    ModelRun,
    ModelRunRow,
    ObjectClass,
    ObjectMatch,
    Prediction,
    SliceMember,
)
from shared.internal_auth import internal_headers
from shared.settings import Settings
from tests.fixtures.search import Catalog

pytestmark = pytest.mark.integration


@dataclass
class World:
    ws1: int
    ws2: int
    ds1: int
    rows: dict[str, int]  # photo name -> row id (ws1 unless noted)
    other: int  # ws2's near-duplicate of the ws1 anchor


@pytest.fixture
def sent() -> list[tuple[TaskName, BaseModel]]:
    return []


@pytest.fixture
def client(
    db_session: Session,
    vector_store: VectorStore,
    blobs: ObjectStore,
    search_settings: Settings,
    sent: list[tuple[TaskName, BaseModel]],
) -> Iterator[TestClient]:
    app = create_app(
        search_settings,
        store=vector_store,
        blobs=blobs,
        sender=lambda name, payload: sent.append((name, payload)),
        inprocess_worker=False,
    )

    def session_override() -> Iterator[Session]:
        yield db_session
        db_session.commit()  # releases the test's savepoint; runs on_commit hooks

    app.dependency_overrides[get_session] = session_override
    with TestClient(app) as c:
        yield c


def _embed(
    db: Session, store: VectorStore, emb: Any, blobs: ObjectStore, s: Settings, ws: int, ids: list[int]
) -> indexing.IndexResult:
    return indexing.embed_rows(db, store, lambda: emb, blobs, s, ws, ids)


@pytest.fixture
def world(
    client: TestClient,
    catalog: Catalog,
    db_session: Session,
    vector_store: VectorStore,
    embedder: Any,
    search_settings: Settings,
) -> World:
    ws1, ws2 = catalog.workspace(), catalog.workspace()
    ds1, ds2 = catalog.dataset(ws1), catalog.dataset(ws2)
    rows = {
        "chelsea": catalog.row(ds1, "chelsea", labeled=True).id,
        "chelsea_crop": catalog.row(ds1, "chelsea_crop", metadata={"camera": "front"}).id,
        "coffee": catalog.row(ds1, "coffee").id,
        "astronaut": catalog.row(ds1, "astronaut", labeled=True).id,
        "rocket": catalog.row(ds1, "rocket", metadata={"camera": "front"}).id,
        "coins": catalog.row(ds1, "coins").id,
    }
    other = catalog.row(ds2, "chelsea_flip").id
    res = _embed(
        db_session, vector_store, embedder, catalog.blobs, search_settings, ws1.id, list(rows.values())
    )
    assert res.embedded == len(rows)
    _embed(db_session, vector_store, embedder, catalog.blobs, search_settings, ws2.id, [other])
    return World(ws1.id, ws2.id, ds1.id, rows, other)


def test_embedding_is_idempotent(
    world: World,
    db_session: Session,
    vector_store: VectorStore,
    embedder: Any,
    blobs: ObjectStore,
    search_settings: Settings,
) -> None:
    ids = list(world.rows.values())
    again = _embed(db_session, vector_store, embedder, blobs, search_settings, world.ws1, ids)
    assert (again.embedded, again.refreshed) == (0, len(ids))
    images = search_settings.qdrant.image_collection
    assert vector_store.count(images, workspace_id=world.ws1) == len(ids)
    stamps = db_session.scalars(select(DataRow.embedded_at).where(DataRow.id.in_(ids))).all()
    assert all(s is not None for s in stamps)
    # another workspace's ids are not embedded by a task naming the wrong workspace
    wrong = _embed(db_session, vector_store, embedder, blobs, search_settings, world.ws1, [world.other])
    assert (wrong.embedded, wrong.refreshed) == (0, 0)


def test_similar_ranks_variants_first_and_never_leaks_workspaces(client: TestClient, world: World) -> None:
    h1, h2 = internal_headers(world.ws1), internal_headers(world.ws2)
    body = {"data_row_ids": [world.rows["chelsea"]], "limit": 10}
    r = client.post("/v1/similar", json=body, headers=h1)
    assert r.status_code == 200, r.text
    got = [x["data_row_id"] for x in r.json()["rows"]]
    assert got[0] == world.rows["chelsea_crop"]
    assert world.other not in got and world.rows["chelsea"] not in got  # ws2's near-duplicate never shows
    assert set(got) == set(world.rows.values()) - {world.rows["chelsea"]}
    # ws2 cannot use ws1's row as an anchor, and sees only its own rows
    r = client.post("/v1/similar", json=body, headers=h2)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.post("/v1/similar", json={"data_row_ids": [world.other], "include_anchors": True}, headers=h2)
    assert [x["data_row_id"] for x in r.json()["rows"]] == [world.other]
    # no internal token: refused
    assert client.post("/v1/similar", json=body).status_code == 401


def test_similar_filters_threshold_and_pages(client: TestClient, world: World) -> None:
    h = internal_headers(world.ws1)
    anchor = [world.rows["chelsea"], world.rows["astronaut"]]
    unlabeled = client.post(
        "/v1/similar", json={"data_row_ids": anchor, "filter": {"annotation": "none"}, "limit": 50}, headers=h
    ).json()["rows"]
    labeled = {world.rows["chelsea"], world.rows["astronaut"]}
    assert unlabeled and not {x["data_row_id"] for x in unlabeled} & labeled
    front = client.post(
        "/v1/similar", json={"data_row_ids": anchor, "filter": {"metadata": {"camera": "front"}}}, headers=h
    ).json()["rows"]
    assert {x["data_row_id"] for x in front} == {world.rows["chelsea_crop"], world.rows["rocket"]}
    strict = client.post(
        "/v1/similar", json={"data_row_ids": anchor, "score_threshold": 0.6}, headers=h
    ).json()
    assert strict["rows"] and all(x["score"] >= 0.6 for x in strict["rows"])
    # pages of 2 concatenate to the full ranking
    full = client.post("/v1/similar", json={"data_row_ids": anchor, "limit": 50}, headers=h).json()["rows"]
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.post(
            "/v1/similar", json={"data_row_ids": anchor, "limit": 2, "cursor": cursor}, headers=h
        ).json()
        pages += page["rows"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [p["data_row_id"] for p in pages] == [x["data_row_id"] for x in full]
    scores = [x["score"] for x in full]
    assert scores == sorted(scores, reverse=True)
    # "mean" combines the anchors into one query
    mean = client.post("/v1/similar", json={"data_row_ids": anchor, "combine": "mean"}, headers=h).json()[
        "rows"
    ]
    assert {x["data_row_id"] for x in mean} == {x["data_row_id"] for x in full}
    bad = client.post("/v1/similar", json={"data_row_ids": anchor, "filter": {"splits": ["test"]}}, headers=h)
    assert bad.status_code == 422 and "model_run_id" in bad.text
    assert (
        client.post("/v1/similar", json={"data_row_ids": anchor, "cursor": "zzz"}, headers=h).status_code
        == 400
    )


def test_slice_collects_new_matching_rows(
    client: TestClient,
    world: World,
    catalog: Catalog,
    db_session: Session,
    vector_store: VectorStore,
    embedder: Any,
    search_settings: Settings,
) -> None:
    h = internal_headers(world.ws1)
    body = {
        "name": "more cats",
        "filter": {"annotation": "none"},
        "similarity": {"data_row_ids": [world.rows["chelsea"]], "score_threshold": 0.6},
    }
    r = client.post("/v1/slices", json=body, headers=h)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert client.post("/v1/slices", json=body, headers=h).status_code == 409
    before = [x["data_row_id"] for x in client.get(f"/v1/slices/{sid}/rows", headers=h).json()["rows"]]
    assert before == [world.rows["chelsea_crop"]]
    meta = client.post(
        "/v1/slices", json={"name": "front", "filter": {"metadata": {"camera": "front"}}}, headers=h
    )
    assert meta.status_code == 201
    # new rows arrive: another cat photo (matches), a coffee photo (does not)
    ds = world.ds1
    cat = catalog.row(cat_dataset(catalog, ds), "chelsea_rot")
    cup = catalog.row(cat_dataset(catalog, ds), "coffee_flip", metadata={"camera": "front"})
    new = [cat.id, cup.id]
    _embed(db_session, vector_store, embedder, catalog.blobs, search_settings, world.ws1, new)
    added = service.match_slices(db_session, vector_store, search_settings, world.ws1, new)
    assert added == {sid: 1, meta.json()["id"]: 1}
    members = db_session.scalars(select(SliceMember.data_row_id).where(SliceMember.slice_id == sid)).all()
    assert list(members) == [cat.id]
    assert service.match_slices(db_session, vector_store, search_settings, world.ws1, new) == {
        sid: 0,
        meta.json()["id"]: 0,
    }
    rows = client.get(f"/v1/slices/{sid}/rows", headers=h).json()["rows"]
    assert {x["data_row_id"] for x in rows} == {world.rows["chelsea_crop"], cat.id}
    front = client.get(f"/v1/slices/{meta.json()['id']}/rows?limit=1", headers=h).json()
    assert len(front["rows"]) == 1 and front["next_cursor"]
    rest = client.get(f"/v1/slices/{meta.json()['id']}/rows?cursor={front['next_cursor']}", headers=h).json()
    assert {x["data_row_id"] for x in front["rows"] + rest["rows"]} == {
        world.rows["chelsea_crop"],
        world.rows["rocket"],
        cup.id,
    }
    listed = client.get("/v1/slices", headers=h).json()["slices"]
    assert {s["name"]: s["members"] for s in listed} == {"more cats": 1, "front": 1}
    # another workspace sees none of it
    h2 = internal_headers(world.ws2)
    assert client.get("/v1/slices", headers=h2).json()["slices"] == []
    assert client.get(f"/v1/slices/{sid}/rows", headers=h2).status_code == 404
    assert client.delete(f"/v1/slices/{sid}", headers=h2).status_code == 404
    assert (
        client.delete(f"/v1/slices/{sid}", headers=internal_headers(world.ws1, {"read"})).status_code == 403
    )
    assert client.delete(f"/v1/slices/{sid}", headers=h).status_code == 204
    bad = client.post("/v1/slices", json={"name": "x", "filter": {"recall_lt": 0.3}}, headers=h)
    assert bad.status_code == 422 and "cannot hold" in bad.text


def cat_dataset(catalog: Catalog, ds_id: int) -> Any:
    from shared.db.models import Dataset

    return catalog.session.get(Dataset, ds_id)


def test_projection_job_and_keyset_pages(
    client: TestClient,
    world: World,
    db_session: Session,
    vector_store: VectorStore,
    search_settings: Settings,
    sent: list[tuple[TaskName, BaseModel]],
) -> None:
    h = internal_headers(world.ws1)
    r = client.post("/v1/projections", json={"dataset_id": world.ds1, "method": "pca"}, headers=h)
    assert r.status_code == 202, r.text
    pid = r.json()["id"]
    assert (sent[-1][0], sent[-1][1].model_dump()) == (TaskName.search_project, {"projection_id": pid})
    assert projections.compute(db_session, vector_store, search_settings, pid) == len(world.rows)
    assert projections.compute(db_session, vector_store, search_settings, pid) == len(
        world.rows
    )  # rerun: same
    status = client.get(f"/v1/projections/{pid}", headers=h).json()
    assert status["status"] == "succeeded" and status["num_points"] == len(world.rows)
    seen: list[int] = []
    cursor = ""
    while True:
        page = client.get(f"/v1/projections/{pid}/points?limit=4&cursor={cursor}", headers=h).json()
        seen += [p["data_row_id"] for p in page["points"]]
        assert len(page["points"]) <= 4
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(world.rows.values())
    assert client.get(f"/v1/projections/{pid}", headers=internal_headers(world.ws2)).status_code == 404
    listed = client.get(f"/v1/projections?dataset_id={world.ds1}", headers=h).json()["projections"]
    assert [p["id"] for p in listed][:1] == [pid] and listed[0]["num_points"] == len(world.rows)
    other = client.get("/v1/projections", headers=internal_headers(world.ws2)).json()["projections"]
    assert pid not in [p["id"] for p in other]
    r = client.post("/v1/projections", json={"dataset_id": world.ds1, "model_run_id": 1}, headers=h)
    assert r.status_code == 422


def test_object_embeddings_find_rows_like_false_positives(
    client: TestClient,
    world: World,
    db_session: Session,
    vector_store: VectorStore,
    embedder: Any,
    blobs: ObjectStore,
    search_settings: Settings,
) -> None:
    ws = world.ws1
    cls = ObjectClass(workspace_id=ws, name="cat")
    run = ModelRun(workspace_id=ws, name="yolo", version="1")
    db_session.add_all([cls, run])
    db_session.flush()
    cat_row, coffee_row = world.rows["chelsea"], world.rows["coffee"]
    db_session.add_all(
        [ModelRunRow(model_run_id=run.id, data_row_id=r, split="validation") for r in world.rows.values()]
    )
    gt = Annotation(
        workspace_id=ws, data_row_id=cat_row, class_id=cls.id, x=100, y=50, w=250, h=250, area=62500
    )
    fp = Prediction(
        model_run_id=run.id, data_row_id=coffee_row, class_id=cls.id, x=50, y=50, w=300, h=250, confidence=0.9
    )
    low = Prediction(
        model_run_id=run.id, data_row_id=coffee_row, class_id=cls.id, x=0, y=0, w=50, h=50, confidence=0.1
    )
    db_session.add_all([gt, fp, low])
    db_session.flush()
    db_session.add_all(
        [
            ObjectMatch(
                model_run_id=run.id,
                kind="gt",
                object_id=gt.id,
                data_row_id=cat_row,
                class_id=cls.id,
                status="FN",
                error_type="miss",
            ),
            ObjectMatch(
                model_run_id=run.id,
                kind="pred",
                object_id=fp.id,
                data_row_id=coffee_row,
                class_id=cls.id,
                confidence=0.9,
                status="FP",
                error_type="bkg",
            ),
        ]
    )
    db_session.flush()
    ids = list(world.rows.values())
    res = indexing.embed_objects(
        db_session, vector_store, lambda: embedder, blobs, search_settings, run.id, ids
    )
    assert res.embedded == 2  # GT + the prediction over the run's 0.5 threshold; the 0.1 one is not shown
    again = indexing.embed_objects(
        db_session, vector_store, lambda: embedder, blobs, search_settings, run.id, ids
    )
    assert (again.embedded, again.refreshed) == (0, 2)
    h = internal_headers(ws)
    anchor = {"model_run_id": run.id, "kind": "pred", "object_id": fp.id}
    # rows like this false positive, ranked by whole image, among unlabeled rows of the run's validation split
    r = client.post(
        "/v1/similar",
        json={
            "object_ids": [anchor],
            "filter": {"annotation": "none", "model_run_id": run.id, "splits": ["validation"]},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    got = [x["data_row_id"] for x in r.json()["rows"]]
    assert got and coffee_row not in got and cat_row not in got  # anchor row excluded; labeled row filtered
    # objects ranked by crop: error-type filter via the object payload
    r = client.post(
        "/v1/similar",
        json={
            "object_ids": [anchor],
            "target": "objects",
            "include_anchors": True,
            "filter": {"model_run_id": run.id, "error_types": ["bkg"]},
        },
        headers=h,
    )
    rows = r.json()["rows"]
    assert [x["data_row_id"] for x in rows] == [coffee_row]
    assert rows[0]["object"] == {"model_run_id": run.id, "kind": "pred", "object_id": fp.id}
    # the image payload now knows the run's errors: error filter on whole images
    r = client.post(
        "/v1/similar",
        json={"data_row_ids": [cat_row], "filter": {"model_run_id": run.id, "error_types": ["bkg"]}},
        headers=h,
    )
    assert [x["data_row_id"] for x in r.json()["rows"]] == [coffee_row]


def test_missing_image_is_skipped_not_fatal(
    catalog: Catalog,
    db_session: Session,
    vector_store: VectorStore,
    embedder: Any,
    blobs: ObjectStore,
    search_settings: Settings,
) -> None:
    indexing.ensure_collections(vector_store, search_settings)
    ws = catalog.workspace()
    ds = catalog.dataset(ws)
    ok, gone = catalog.row(ds, "coins"), catalog.row(ds, "camera")
    blobs.delete(gone.object_key)
    res = _embed(db_session, vector_store, embedder, blobs, search_settings, ws.id, [ok.id, gone.id])
    assert (res.embedded, res.skipped) == (1, [gone.id])
    assert db_session.get(DataRow, gone.id).embedded_at is None  # type: ignore[union-attr]
