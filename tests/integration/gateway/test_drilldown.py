"""Every drill-down link: a bucket's or cell's count equals the number of gallery rows its filter returns."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, text

from shared.db.models import ClassMetrics
from shared.db.partitions import partition
from tests.fixtures.gateway import World

pytestmark = pytest.mark.integration


async def gallery_total(
    gw: httpx.AsyncClient, world: World, run_id: int, flt: dict[str, Any], **kw: Any
) -> int:
    r = await gw.post(
        f"/v1/runs/{run_id}/gallery",
        json={"filter": flt, "limit": 1, "include_total": True, **kw},
        headers=world.ws.h(world.ws.read),
    )
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


@pytest.mark.parametrize(
    ("metric", "class_name", "split"),
    [
        ("recall", None, None),
        ("iou", None, "validation"),
        ("precision", "person", None),
        ("recall", "person", "test"),
        ("f1", "car", None),
        ("confidence", None, None),
        ("fn", None, None),
        ("fp", "dog", None),
    ],
)
async def test_histogram_bucket_counts_equal_their_gallery(
    gw: httpx.AsyncClient, world: World, metric: str, class_name: str | None, split: str | None
) -> None:
    run = world.runs[0]
    params: dict[str, Any] = {"metric": metric, "bins": 10}
    if class_name:
        params["class_name"] = class_name
    if split:
        params["split"] = split
    r = await gw.get(f"/v1/runs/{run.id}/metrics/histogram", params=params, headers=world.ws.h(world.ws.read))
    assert r.status_code == 200, r.text
    buckets = r.json()["buckets"]
    assert buckets
    for b in buckets:
        assert await gallery_total(gw, world, run.id, b["filter"]) == b["count"], b
    # the buckets partition the rows (class histograms: rows where the class is present)
    if class_name is None:
        expected = sum(1 for rid in run.row_ids if split is None or run.split_of[rid] == split)
    else:
        cid = world.class_ids[class_name]
        expected = sum(
            1 for (rid, c) in run.class_metrics if c == cid and (split is None or run.split_of[rid] == split)
        )
    assert sum(b["count"] for b in buckets) == expected


async def test_histogram_edges_are_half_open_with_a_closed_last_bucket(
    gw: httpx.AsyncClient, world: World
) -> None:
    run = world.runs[0]
    r = await gw.get(
        f"/v1/runs/{run.id}/metrics/histogram",
        params={"metric": "recall", "bins": 5},
        headers=world.ws.h(world.ws.read),
    )
    buckets = [b for b in r.json()["buckets"] if b["lo"] is not None]
    assert [b["lo"] for b in buckets] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert buckets[0]["filter"]["all"][-1] == {"field": "recall", "op": "lt", "value": 0.2}
    assert buckets[-1]["filter"]["all"][-1] == {"field": "recall", "op": "lte", "value": 1.0}
    full = sum(1 for m in run.row_metrics.values() if m["recall"] == 1.0)
    assert full and buckets[-1]["count"] >= full


async def test_histogram_at_query_thresholds(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    thresholds = {"iou_threshold": 0.75, "confidence_threshold": 0.3}
    r = await gw.get(
        f"/v1/runs/{run.id}/metrics/histogram",
        params={"metric": "precision", "bins": 4, **thresholds},
        headers=world.ws.h(world.ws.read),
    )
    assert r.status_code == 200, r.text
    for b in r.json()["buckets"]:
        assert await gallery_total(gw, world, run.id, b["filter"], **thresholds) == b["count"]


@pytest.mark.parametrize("split", [None, "train"])
async def test_confusion_cells_link_to_their_rows(
    gw: httpx.AsyncClient, world: World, split: str | None
) -> None:
    run = world.runs[0]
    params = {"split": split} if split else {}
    r = await gw.get(f"/v1/runs/{run.id}/metrics/confusion", params=params, headers=world.ws.h(world.ws.read))
    assert r.status_code == 200, r.text
    cells = r.json()["cells"]
    kinds = {
        (c["gt_class"] is None, c["pred_class"] is None, c["gt_class"] == c["pred_class"]) for c in cells
    }
    assert (True, False, False) in kinds and (
        False,
        True,
        False,
    ) in kinds  # background FP and missed GT cells
    for cell in cells:
        assert await gallery_total(gw, world, run.id, cell["filter"]) == cell["rows"], cell
        assert cell["count"] >= cell["rows"]
    # object counts agree with the fixture's matches
    if split is None:
        tp_objects = sum(
            1 for m in run.matches if m["kind"] == "pred" and m["status"] == "TP" and m["confidence"] >= 0.5
        )
        assert (
            sum(c["count"] for c in cells if c["gt_class"] is not None and c["gt_class"] == c["pred_class"])
            == tp_objects
        )


async def test_auto_slices_counts_equal_their_gallery(gw: httpx.AsyncClient, world: World) -> None:
    run = world.runs[0]
    r = await gw.get(f"/v1/runs/{run.id}/auto-slices", headers=world.ws.h(world.ws.read))
    assert r.status_code == 200, r.text
    slices = {s["key"]: s for s in r.json()["slices"]}
    assert set(slices) == {
        "false_positives", "false_negatives", "low_precision", "low_recall", "low_f1", "low_confidence",
        "candidate_mislabels",
    }  # fmt: skip
    assert slices["false_negatives"]["count"] == sum(1 for m in run.row_metrics.values() if m["fn"] > 0)
    for s in slices.values():
        assert await gallery_total(gw, world, run.id, s["filter"]) == s["count"]
    mislabel_rows = {
        m["data_row_id"] for m in run.matches
        if m["kind"] == "pred" and m["error_type"] in {"cls", "bkg"} and m["confidence"] >= 0.8
    }  # fmt: skip
    assert slices["candidate_mislabels"]["count"] == len(mislabel_rows)


async def test_class_table_curves_and_tide(gw: httpx.AsyncClient, world: World, engine: Engine) -> None:
    run = world.runs[1]
    person = world.class_ids["person"]
    base = dict(num_gt=10, num_pred=12, tp=8, fp=4, fn=2, precision=8 / 12, recall=0.8, f1=0.727, ap=0.61, ap50=0.8,
                pr_curve=None, f1_curve=None, best_conf_threshold=None, best_f1=None, tide=None)  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(ClassMetrics),
            [  # every dict has the same keys (executemany)
                {"model_run_id": run.id, "split": "all", "class_id": 0, **base},
                {"model_run_id": run.id, "split": "all", "class_id": person, **base,
                 "pr_curve": {"recall": [0, 0.5, 1], "precision": [1, 0.8, 0.4]},
                 "f1_curve": {"confidence": [0.1, 0.5], "f1": [0.5, 0.7]}, "best_conf_threshold": 0.5,
                 "best_f1": 0.7, "tide": {"cls": 0.01, "loc": 0.05, "both": 0.0, "dupe": 0.0, "bkg": 0.02, "miss": 0.1}},
                {"model_run_id": run.id, "split": "validation", "class_id": person, **base},
            ],
        )  # fmt: skip
    h = world.ws.h(world.ws.read)
    table = (await gw.get(f"/v1/runs/{run.id}/metrics/classes", params={"split": "all"}, headers=h)).json()[
        "classes"
    ]
    assert [(c["class_id"], c["class_name"]) for c in table] == [(0, None), (person, "person")]
    all_splits = (await gw.get(f"/v1/runs/{run.id}/metrics/classes", headers=h)).json()["classes"]
    assert {c["split"] for c in all_splits} == {"all", "validation"}
    curves = (
        await gw.get(f"/v1/runs/{run.id}/metrics/curves", params={"class_name": "person"}, headers=h)
    ).json()
    assert curves["curves"][0]["pr_curve"]["precision"] == [1, 0.8, 0.4]
    assert curves["curves"][0]["best_f1"] == 0.7
    tide = (await gw.get(f"/v1/runs/{run.id}/metrics/tide", headers=h)).json()["rows"]
    assert next(t for t in tide if t["class_name"] == "person")["tide"]["miss"] == 0.1
    bad = await gw.get(f"/v1/runs/{run.id}/metrics/curves", params={"class_name": "unicorn"}, headers=h)
    assert bad.status_code == 400 and bad.json()["context"]["field"] == "class_name"
    bad = await gw.get(f"/v1/runs/{run.id}/metrics/histogram", params={"metric": "recal"}, headers=h)
    assert bad.status_code == 400 and bad.json()["context"]["field"] == "metric"


@pytest.mark.parametrize("class_name", [None, "person"])
async def test_histogram_of_a_run_whose_partition_is_detached_counts_no_rows(
    gw: httpx.AsyncClient, world: World, engine: Engine, class_name: str | None
) -> None:
    """Indexed histograms read the run's partition directly; while it is detached (a bulk load in
    progress) they count what the gallery shows through the parent tables: nothing."""
    run = world.runs[0]
    table = "row_metrics" if class_name is None else "row_class_metrics"
    part = partition(table, run.id)
    params: dict[str, Any] = {
        "metric": "recall",
        "bins": 4,
        **({"class_name": class_name} if class_name else {}),
    }
    h = world.ws.h(world.ws.read)
    before = (await gw.get(f"/v1/runs/{run.id}/metrics/histogram", params=params, headers=h)).json()[
        "buckets"
    ]
    assert sum(b["count"] for b in before) > 0
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {part}"))
    try:
        r = await gw.get(f"/v1/runs/{run.id}/metrics/histogram", params=params, headers=h)
        assert r.status_code == 200, r.text
        buckets = r.json()["buckets"]
        assert [b["count"] for b in buckets if b["lo"] is not None] == [0] * 4
        for b in buckets:
            assert await gallery_total(gw, world, run.id, b["filter"]) == b["count"] == 0
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES IN ({run.id})"))
    after = (await gw.get(f"/v1/runs/{run.id}/metrics/histogram", params=params, headers=h)).json()["buckets"]
    assert after == before
