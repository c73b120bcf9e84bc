"""Gallery queries against rows whose metrics were computed independently in Python (tests/fixtures)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.gateway import GRID, World

pytestmark = pytest.mark.integration


async def all_rows(
    gw: httpx.AsyncClient, world: World, run_id: int, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every page of a query, following next_cursor."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        r = await gw.post(
            f"/v1/runs/{run_id}/gallery", json={**body, "cursor": cursor}, headers=world.ws.h(world.ws.read)
        )
        assert r.status_code == 200, r.text
        page = r.json()
        rows.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["data_row_id"] for r in rows]


OPS = {
    "lt": lambda v, x: v is not None and v < x,
    "lte": lambda v, x: v is not None and v <= x,
    "gt": lambda v, x: v is not None and v > x,
    "gte": lambda v, x: v is not None and v >= x,
    "eq": lambda v, x: v is not None and v == x,
}
COL = {"iou": "mean_iou", "confidence": "mean_conf", "precision": "precision", "recall": "recall", "f1": "f1",
       "tp": "tp", "fp": "fp", "fn": "fn", "min_confidence": "min_conf", "max_confidence": "max_conf"}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [("iou", "lt", 0.8), ("confidence", "gte", 0.6), ("precision", "lt", 0.5), ("recall", "gte", 0.5),
     ("f1", "lte", 0.4), ("tp", "gt", 1), ("fp", "eq", 0), ("fn", "gte", 2), ("max_confidence", "gt", 0.9)],
)  # fmt: skip
async def test_single_metric_filter_matches_python(
    gw: httpx.AsyncClient, world: World, field: str, op: str, value: float
) -> None:
    run = world.runs[0]
    expected = sorted(r for r, m in run.row_metrics.items() if OPS[op](m[COL[field]], value))
    got = await all_rows(
        gw, world, run.id, {"filter": {"all": [{"field": field, "op": op, "value": value}]}, "limit": 7}
    )
    assert ids(got) == expected
    assert expected, "the fixture should produce rows for every tested filter"


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("field", ["iou", "precision", "fn"])
async def test_sort_and_keyset_pages_cover_every_row_once(
    gw: httpx.AsyncClient, world: World, field: str, order: str
) -> None:
    run = world.runs[0]
    col = COL[field]
    got = await all_rows(gw, world, run.id, {"sort": {"field": field, "order": order}, "limit": 7})
    non_null = [(m[col], r) for r, m in run.row_metrics.items() if m[col] is not None]
    nulls = sorted((r for r, m in run.row_metrics.items() if m[col] is None), reverse=order == "desc")
    expected = [r for _, r in sorted(non_null, reverse=order == "desc")] + nulls
    assert ids(got) == expected  # nulls last in both orders, ties broken by row id


async def test_class_restricted_filter_and_sort(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    person = world.class_ids["person"]
    expected_rows = [
        (m["recall"], r)
        for (r, c), m in run.class_metrics.items()
        if c == person and m["recall"] is not None and m["recall"] < 1.0
    ]
    body = {
        "filter": {"all": [{"field": "recall", "class_name": "person", "op": "lt", "value": 1.0}]},
        "sort": {"field": "recall", "class_name": "person", "order": "asc"},
        "limit": 4,
    }
    got = await all_rows(gw, world, run.id, body)
    assert ids(got) == [r for _, r in sorted(expected_rows)]
    assert got, "fixture has persons with recall < 1"


async def test_attribute_filters(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]

    async def q(cond: dict[str, Any]) -> list[int]:
        return ids(await all_rows(gw, world, run.id, {"filter": {"all": [cond]}, "limit": 50}))

    assert await q({"field": "split", "op": "eq", "value": "validation"}) == sorted(
        r for r, s in run.split_of.items() if s == "validation"
    )
    dog = world.class_ids["dog"]
    assert await q({"field": "class_in_gt", "op": "eq", "value": "dog"}) == sorted(
        r for r in run.row_ids if any(c == dog for _, c, _ in world.gt[r])
    )
    assert await q({"field": "annotation", "op": "eq", "value": "none"}) == sorted(
        r for r in run.row_ids if not world.gt[r]
    )
    errs = {
        m["data_row_id"]
        for m in run.matches
        if m["error_type"] == "bkg" and m["confidence"] is not None and m["confidence"] >= 0.5
    }
    assert await q({"field": "error_type", "op": "eq", "value": "bkg"}) == sorted(errs)
    preds_dog = {
        m["data_row_id"]
        for m in run.matches
        if m["kind"] == "pred" and m["class_id"] == dog and m["confidence"] >= 0.5
    }
    assert await q({"field": "class_in_pred", "op": "in", "value": ["dog"]}) == sorted(preds_dog)
    # metadata: equality via JSON containment, numbers compared as numbers
    got_rain = await q({"field": "metadata.weather", "op": "eq", "value": "rain"})
    got_late = await q({"field": "metadata.hour", "op": "gte", "value": 12})
    rows = {r["data_row_id"]: r for r in await all_rows(gw, world, run.id, {"limit": 200})}
    assert got_rain == sorted(r for r, row in rows.items() if row["metadata"]["weather"] == "rain")
    assert got_late == sorted(r for r, row in rows.items() if row["metadata"]["hour"] >= 12)
    subset = sorted(run.row_ids)[:5]
    assert await q({"field": "data_row_id", "op": "in", "value": subset}) == subset


async def test_rows_carry_objects_status_and_presigned_urls(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    page = (
        await gw.post(f"/v1/runs/{run.id}/gallery", json={"limit": 200}, headers=world.ws.h(world.ws.read))
    ).json()
    by_row = {r["data_row_id"]: r for r in page["rows"]}
    for m in run.matches:
        if m["kind"] == "pred" and m["confidence"] < 0.5:
            continue
        objs = [
            o
            for o in by_row[m["data_row_id"]]["objects"]
            if o["kind"] == m["kind"] and o["id"] == m["object_id"]
        ]
        assert len(objs) == 1
        assert objs[0]["status"] == m["status"]
        assert objs[0]["error_type"] == m["error_type"]
    hidden = [m for m in run.matches if m["kind"] == "pred" and m["confidence"] < 0.5]
    assert hidden and all(
        m["object_id"] not in {o["id"] for o in by_row[m["data_row_id"]]["objects"] if o["kind"] == "pred"}
        for m in hidden
    )
    row = page["rows"][0]
    assert "X-Amz-Signature=" in row["thumbnail_url"] and "X-Amz-Expires=900" in row["thumbnail_url"]
    assert len(row["objects"][0]["box"]) == 4


def expected_at(world: World, run_idx: int, iou_t: float, conf: float) -> dict[int, dict[str, Any]]:
    """Row metrics recomputed in Python from the stored tp_mask bits (docs/metrics.md definitions)."""
    run = world.runs[run_idx]
    bit = 1 << GRID.index(iou_t)
    out = {}
    for r in run.row_ids:
        objs = [m for m in run.matches if m["data_row_id"] == r]
        kept = [m for m in objs if m["kind"] == "pred" and m["confidence"] >= conf]
        tp = sum(1 for m in kept if m["tp_mask"] & bit)
        num_gt = sum(1 for m in objs if m["kind"] == "gt")
        fp, fn = len(kept) - tp, num_gt - tp
        out[r] = {
            "tp": tp, "fp": fp, "fn": fn, "num_pred": len(kept), "num_gt": num_gt,
            "precision": tp / len(kept) if kept else None,
            "recall": tp / num_gt if num_gt else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if (kept or num_gt) else None,
        }  # fmt: skip
    return out


async def test_thresholds_per_query_recompute_from_matches(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    exp = expected_at(world, 0, 0.75, 0.3)
    body = {"iou_threshold": 0.75, "confidence_threshold": 0.3, "limit": 200}
    page = await all_rows(gw, world, run.id, body)
    assert len(page) == len(run.row_ids)
    for row in page:
        e = exp[row["data_row_id"]]
        for k in ("tp", "fp", "fn", "num_pred", "num_gt"):
            assert row["metrics"][k] == e[k], (row["data_row_id"], k)
        for k in ("precision", "recall", "f1"):
            assert (row["metrics"][k] is None) == (e[k] is None)
            if e[k] is not None:
                assert row["metrics"][k] == pytest.approx(e[k])
    # a filter at those thresholds selects on the recomputed values
    got = await all_rows(
        gw, world, run.id, {**body, "filter": {"all": [{"field": "fp", "op": "gte", "value": 2}]}}
    )
    assert ids(got) == sorted(r for r, e in exp.items() if e["fp"] >= 2)
    # predictions under the query's confidence are hidden, the others shown with status at these thresholds
    for row in page:
        for o in row["objects"]:
            if o["kind"] == "pred":
                assert o["confidence"] >= 0.3
                m = next(m for m in run.matches if m["kind"] == "pred" and m["object_id"] == o["id"])
                assert o["status"] == ("TP" if m["tp_mask"] & (1 << GRID.index(0.75)) else "FP")


async def test_thresholds_equal_to_the_runs_read_the_stored_rows(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    plain = await all_rows(gw, world, run.id, {"limit": 200})
    explicit = await all_rows(
        gw, world, run.id, {"limit": 200, "iou_threshold": 0.5, "confidence_threshold": 0.5}
    )
    assert [r["metrics"] for r in plain] == [r["metrics"] for r in explicit]


async def test_total_on_request(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    r = await gw.post(
        f"/v1/runs/{run.id}/gallery",
        json={
            "filter": {"all": [{"field": "fn", "op": "gt", "value": 0}]},
            "limit": 1,
            "include_total": True,
        },
        headers=world.ws.h(world.ws.read),
    )
    assert r.json()["total"] == sum(1 for m in run.row_metrics.values() if m["fn"] > 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"all": [{"field": "recal", "op": "lt", "value": 0.5}]}}, "recal"),
        ({"filter": {"all": [{"field": "iou", "op": "lt", "value": "low"}]}}, "iou"),
        ({"filter": {"all": [{"field": "iou", "op": "between", "value": [0.9, 0.1]}]}}, "iou"),
        (
            {"filter": {"all": [{"field": "recall", "class_name": "unicorn", "op": "lt", "value": 1}]}},
            "class_name",
        ),
        ({"filter": {"all": [{"field": "split", "op": "eq", "value": "holdout"}]}}, "split"),
        ({"filter": {"all": [{"field": "error_type", "op": "eq", "value": "oops"}]}}, "error_type"),
        ({"filter": {"all": [{"field": "annotation", "op": "eq", "value": "some"}]}}, "annotation"),
        ({"filter": {"all": [{"field": "metadata.", "op": "eq", "value": 1}]}}, "metadata."),
        ({"sort": {"field": "shoe_size"}}, "sort.field"),
        ({"iou_threshold": 0.52}, "iou_threshold"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ],
)
async def test_bad_query_is_400_naming_the_field(
    gw: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    r = await gw.post(f"/v1/runs/{world.runs[0].id}/gallery", json=body, headers=world.ws.h(world.ws.read))
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["error"] == "bad_request"
    assert err["context"]["field"] == field
    assert field.split(".")[0] in err["detail"]


async def test_cursor_of_another_query_is_refused(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    h = world.ws.h(world.ws.read)
    first = (
        await gw.post(f"/v1/runs/{run.id}/gallery", json={"limit": 2, "sort": {"field": "iou"}}, headers=h)
    ).json()
    r = await gw.post(
        f"/v1/runs/{run.id}/gallery",
        json={"limit": 2, "sort": {"field": "f1"}, "cursor": first["next_cursor"]},
        headers=h,
    )
    assert r.status_code == 400 and r.json()["context"]["field"] == "cursor"


async def test_row_route_full_resolution_and_objects(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    row_id = next(r for r in run.row_ids if world.gt[r])
    r = await gw.get(f"/v1/rows/{row_id}", params={"model_run_id": run.id}, headers=world.ws.h(world.ws.read))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "images/" in body["image_url"] and "X-Amz-Signature" in body["image_url"]
    assert body["metrics"]["tp"] == run.row_metrics[row_id]["tp"]
    assert {o["id"] for o in body["objects"] if o["kind"] == "gt"} == {a for a, _, _ in world.gt[row_id]}


async def test_slice_membership_and_its_saved_filter(
    gw: httpx.AsyncClient, world: World, engine: Any
) -> None:
    from sqlalchemy import insert

    from shared.db.models import Slice, SliceMember

    run = world.runs[0]
    members = sorted(run.row_ids)[:3]
    with engine.begin() as conn:
        collected = conn.execute(
            insert(Slice).values(workspace_id=world.ws.id, name=f"s-{run.id}-a").returning(Slice.id)
        ).scalar_one()
        conn.execute(insert(SliceMember), [{"slice_id": collected, "data_row_id": r} for r in members])
        saved = conn.execute(
            insert(Slice)
            .values(
                workspace_id=world.ws.id,
                name=f"s-{run.id}-b",
                filter={"splits": ["test"], "annotation": "any"},
            )
            .returning(Slice.id)
        ).scalar_one()
    got = await all_rows(gw, world, run.id, {"filter": {"all": [{"field": "slice_id", "value": collected}]}})
    assert ids(got) == members
    got = await all_rows(gw, world, run.id, {"filter": {"all": [{"field": "slice_id", "value": saved}]}})
    assert ids(got) == sorted(r for r in run.row_ids if run.split_of[r] == "test" and world.gt[r])
