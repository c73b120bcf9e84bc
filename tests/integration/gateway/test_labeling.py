"""Catalog selections, labeling projects and batches (idempotent, skipped rows), export and label import."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.fixtures.gateway import World

pytestmark = pytest.mark.integration


async def test_catalog_selections(gw: httpx.AsyncClient, world: World) -> None:
    h = world.ws.h(world.ws.read)
    every = (await gw.post("/v1/catalog/query", json={"limit": 200}, headers=h)).json()["rows"]
    assert [r["data_row_id"] for r in every] == sorted(world.row_ids + world.unlabeled_ids)
    # "annotation is none" keeps unlabeled rows only
    none = (await gw.post("/v1/catalog/query", json={"annotation": "none", "limit": 200}, headers=h)).json()[
        "rows"
    ]
    assert {r["data_row_id"] for r in none} == set(world.unlabeled_ids) | {
        r for r in world.row_ids if not world.gt[r]
    }
    assert all(r["num_annotations"] == 0 for r in none)
    # by a run's filter, paged
    run = world.runs[0]
    body: dict[str, Any] = {
        "selection": {"filter": {"all": [{"field": "fn", "op": "gt", "value": 0}]}, "model_run_id": run.id},
        "limit": 5,
    }
    got: list[int] = []
    for _ in range(50):
        page = (await gw.post("/v1/catalog/query", json=body, headers=h)).json()
        got += [r["data_row_id"] for r in page["rows"]]
        if not page["next_cursor"]:
            break
        body["cursor"] = page["next_cursor"]
    assert got == sorted(r for r, m in run.row_metrics.items() if m["fn"] > 0)
    # by ids, restricted to datasets
    ids = world.row_ids[:4]
    sel = await gw.post(
        "/v1/catalog/query",
        json={"selection": {"data_row_ids": ids}, "dataset_ids": [world.dataset_id]},
        headers=h,
    )
    assert [r["data_row_id"] for r in sel.json()["rows"]] == ids
    bad = await gw.post(
        "/v1/catalog/query", json={"selection": {"data_row_ids": ids, "slice_id": 1}}, headers=h
    )
    assert bad.status_code == 422 and "selection" in bad.json()["detail"]


async def test_batches_are_idempotent_and_skip_rows_already_in_the_project(
    gw: httpx.AsyncClient, make_world: Callable[..., Awaitable[World]], engine: Engine
) -> None:
    world = await make_world(n_rows=20, runs=1)
    h = world.ws.h(world.ws.write)
    project = (await gw.post("/v1/projects", json={"name": "fix-misses"}, headers=h)).json()
    assert (await gw.post("/v1/projects", json={"name": "fix-misses"}, headers=h)).status_code == 409
    run = world.runs[0]
    first_ids = world.row_ids[:6]
    key = uuid.uuid4().hex
    body = {"name": "first", "priority": 2, "idempotency_key": key, "selection": {"data_row_ids": first_ids},
            "model_run_id": run.id}  # fmt: skip
    a = await gw.post(f"/v1/projects/{project['id']}/batches", json=body, headers=h)
    assert a.status_code == 201, a.text
    assert a.json()["added"] == sorted(first_ids) and a.json()["skipped"] == []
    # a retry with the same key returns the same batch and creates nothing
    b = await gw.post(f"/v1/projects/{project['id']}/batches", json=body, headers=h)
    assert b.json()["batch"]["id"] == a.json()["batch"]["id"] and b.json()["replayed"] is True
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM batches WHERE idempotency_key = :k"), {"k": key}
        ).scalar_one()
    assert n == 1
    # the same key for a different batch is a conflict
    c = await gw.post(f"/v1/projects/{project['id']}/batches", json={**body, "name": "other"}, headers=h)
    assert c.status_code == 409 and c.json()["context"]["field"] == "idempotency_key"
    # a second batch by filter: rows already in the project are skipped and reported
    flt = {"all": [{"field": "data_row_id", "op": "in", "value": world.row_ids[3:10]}]}
    d = await gw.post(
        f"/v1/projects/{project['id']}/batches",
        json={"name": "second", "priority": 5, "idempotency_key": uuid.uuid4().hex,
              "selection": {"filter": flt, "model_run_id": run.id}},
        headers=h,
    )  # fmt: skip
    assert d.status_code == 201, d.text
    assert d.json()["skipped"] == sorted(world.row_ids[3:6])
    assert d.json()["added"] == sorted(world.row_ids[6:10])
    listed = (await gw.get(f"/v1/projects/{project['id']}/batches", headers=h)).json()["batches"]
    assert [x["priority"] for x in listed] == [2, 5]
    projects = (await gw.get("/v1/projects", headers=h)).json()["projects"]
    assert next(p for p in projects if p["id"] == project["id"])["num_rows"] == 10
    # bad priority / too large a selection: 4xx and nothing written
    bad = await gw.post(
        f"/v1/projects/{project['id']}/batches",
        json={**body, "priority": 9, "idempotency_key": "x"},
        headers=h,
    )
    assert bad.status_code == 422 and "priority" in bad.json()["detail"]
    big = await gw.post(
        f"/v1/projects/{project['id']}/batches",
        json={
            **body,
            "idempotency_key": "too-big",
            "max_rows": 2,
            "selection": {"data_row_ids": world.row_ids},
        },
        headers=h,
    )
    assert big.status_code == 400 and big.json()["context"]["field"] == "selection"
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM batches WHERE idempotency_key = 'too-big'")).scalar_one()
            == 0
        )


async def test_export_and_import_labels(
    gw: httpx.AsyncClient, make_world: Callable[..., Awaitable[World]], engine: Engine
) -> None:
    world = await make_world(n_rows=9, runs=1)
    h = world.ws.h(world.ws.write)
    run = world.runs[0]
    project = (await gw.post("/v1/projects", json={"name": "roundtrip"}, headers=h)).json()
    rows = world.row_ids[:3] + world.unlabeled_ids[:2]
    batch = (
        await gw.post(
            f"/v1/projects/{project['id']}/batches",
            json={"name": "rt", "idempotency_key": uuid.uuid4().hex, "selection": {"data_row_ids": rows},
                  "model_run_id": run.id},
            headers=h,
        )
    ).json()["batch"]  # fmt: skip
    ls = (
        await gw.get(f"/v1/batches/{batch['id']}/export", params={"format": "label_studio"}, headers=h)
    ).json()
    assert [t["data"]["data_row_id"] for t in ls] == sorted(rows)
    assert all("X-Amz-Signature" in t["data"]["image"] for t in ls)
    kept_preds = {
        m["object_id"]
        for m in run.matches
        if m["kind"] == "pred" and m["confidence"] >= 0.5 and m["data_row_id"] in rows
    }
    exported = {int(r["id"][1:]) for t in ls for p in t.get("predictions", []) for r in p["result"]}
    assert exported == kept_preds
    coco = (await gw.get(f"/v1/batches/{batch['id']}/export", params={"format": "coco"}, headers=h)).json()
    assert {i["id"] for i in coco["images"]} == set(rows)
    assert {a["id"] for a in coco["annotations"]} == kept_preds
    assert all("score" in a and len(a["bbox"]) == 4 for a in coco["annotations"])

    # label the first task by hand in Label Studio terms: one car box at 10%/20%, 30% x 40% of 640x480
    target = ls[0]["data"]["data_row_id"]
    ls_import = [
        {"data": {"data_row_id": target}, "annotations": [{"result": [
            {"type": "rectanglelabels", "original_width": 640, "original_height": 480,
             "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["car"]}}]}]}
    ]  # fmt: skip
    r = await gw.post(f"/v1/batches/{batch['id']}/labels", json=ls_import, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["rows_updated"] == 1 and r.json()["boxes_written"] == 1
    assert r.json()["metrics_recompute"] == [{"model_run_id": run.id, "data_row_ids": [target]}]
    with engine.connect() as conn:
        boxes = conn.execute(
            text("SELECT x, y, w, h, class_id, source FROM annotations WHERE data_row_id = :r"), {"r": target}
        ).all()
        n = conn.execute(
            text("SELECT num_annotations FROM data_rows WHERE id = :r"), {"r": target}
        ).scalar_one()
    assert [tuple(b) for b in boxes] == [(64.0, 96.0, 192.0, 192.0, world.class_ids["car"], "labeling")]
    assert n == 1
    # COCO import for an unlabeled row: it leaves "annotation is none"
    unl = world.unlabeled_ids[0]
    coco_in = {"images": [{"id": unl}], "categories": [{"id": 1, "name": "dog"}],
               "annotations": [{"image_id": unl, "category_id": 1, "bbox": [1, 2, 30, 40]}]}  # fmt: skip
    r = await gw.post(f"/v1/batches/{batch['id']}/labels", json=coco_in, headers=h)
    assert r.status_code == 200 and r.json()["metrics_recompute"] == []
    none = (await gw.post("/v1/catalog/query", json={"annotation": "none", "limit": 200}, headers=h)).json()[
        "rows"
    ]
    assert unl not in {x["data_row_id"] for x in none}
    # refusals: a row outside the batch, an unknown class; nothing is written
    outside = world.row_ids[-1]
    r = await gw.post(
        f"/v1/batches/{batch['id']}/labels",
        json=[{"data": {"data_row_id": outside}, "annotations": []}],
        headers=h,
    )
    assert r.status_code == 400 and "not in this batch" in r.json()["detail"]
    bad_cls = [{"data": {"data_row_id": target}, "annotations": [{"result": [
        {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["zebra"]}}]}]}]  # fmt: skip
    r = await gw.post(f"/v1/batches/{batch['id']}/labels", json=bad_cls, headers=h)
    assert r.status_code == 422 and "zebra" in r.json()["detail"]
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotations WHERE data_row_id = :r"), {"r": target}
            ).scalar_one()
            == 1
        )


async def test_compare_two_runs(gw: httpx.AsyncClient, world: World) -> None:
    before, after = world.runs
    h = world.ws.h(world.ws.read)
    status_of = {
        run.id: {m["object_id"]: m["status"] for m in run.matches if m["kind"] == "gt"} for run in world.runs
    }
    expected_gt: dict[str, set[int]] = {"fixed": set(), "regressed": set(), "still_wrong": set()}
    for m in after.matches:
        if m["kind"] != "gt":
            continue
        pair = (status_of[before.id][m["object_id"]], m["status"])
        key = {("FN", "TP"): "fixed", ("TP", "FN"): "regressed", ("FN", "FN"): "still_wrong"}.get(pair)
        if key:
            expected_gt[key].add(m["data_row_id"])
    summary = (await gw.get(f"/v1/runs/{after.id}/compare/{before.id}", headers=h)).json()
    assert set(summary["counts"]) == {"fixed", "regressed", "new_error", "still_wrong"}
    for status, flt in summary["filters"].items():
        r = await gw.post(
            f"/v1/runs/{after.id}/gallery",
            json={"filter": flt, "limit": 200, "include_total": True},
            headers=h,
        )
        got = {x["data_row_id"] for x in r.json()["rows"]}
        assert r.json()["total"] == summary["counts"][status] == len(got)
        if status == "regressed":
            assert got == expected_gt["regressed"]  # only GT objects can regress
        elif status in expected_gt:
            assert expected_gt[status] <= got
    assert summary["counts"]["fixed"] > 0 and summary["counts"]["new_error"] > 0


async def test_a_write_is_committed_before_its_response_starts(
    gateway_app: Any, world: World, engine: Engine
) -> None:
    """The request's transaction commits before the first byte of the response: a client that gets
    201 and at once uses what it created (another request, another connection) finds it. With the
    session dependency's default scope FastAPI commits only after the response is sent, and the
    demo's "create a project, then a batch in it" lost that race (404 "labeling project not found")."""
    name = f"committed-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": f'{{"name": "{name}"}}'.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.append(message["status"])
            with engine.connect() as conn:  # what any other connection sees as the response starts
                seen.append(
                    conn.execute(
                        text("SELECT count(*) FROM labeling_projects WHERE name = :n"), {"n": name}
                    ).scalar_one()
                )

    headers = [(k.lower().encode(), v.encode()) for k, v in world.ws.h(world.ws.write).items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/projects", "raw_path": b"/v1/projects", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"gateway"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1), "server": ("gateway", 80), "state": {},
    }  # fmt: skip
    await gateway_app(scope, receive, send)
    assert seen == [201, 1]
