"""Every format in both directions: hand-written files import as expected; export -> import is lossless."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.integration.ingest.boxes import (
    COCO_GT,
    COCO_RESULTS,
    EMPTY_GT,
    coco_bytes,
    gt_state,
    import_gt,
    import_preds,
    pred_state,
    same_boxes,
    setup_dataset,
    zip_bytes,
)

pytestmark = pytest.mark.integration


async def test_coco_ground_truth_with_iscrowd_and_area(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    r = await import_gt(client, ds, "coco", coco_bytes(COCO_GT), "instances.json")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "succeeded" and job["result"]["boxes"] == 3 and job["processed"] == 3
    assert sorted(job["result"]["classes_created"]) == ["car", "person"]
    state = gt_state(engine, ds)
    assert state == [
        ("img/a.jpg", "car", 300.0, 100.0, 50.0, 40.0, True, 1500.5),
        ("img/a.jpg", "person", 10.5, 20.25, 100.125, 200.0, False, 20025.0),
        ("img/b.jpg", "person", 0.0, 0.0, 320.0, 240.0, False, 76800.0),
    ]
    classes = {c["name"]: c["external_id"] for c in (await client.get("/v1/classes")).json()}
    assert classes == {"person": 1, "car": 3}
    rows = {i["global_key"]: i for i in (await client.get(f"/v1/datasets/{ds}/rows")).json()["items"]}
    assert [rows[k]["num_annotations"] for k in ("img/a.jpg", "img/b.jpg", "img/c.jpg")] == [2, 1, 0]
    assert rows["img/a.jpg"]["metadata"]["coco_image_id"] == 11
    # The same file again: the same boxes, not twice as many (an import replaces its images' boxes).
    again = await import_gt(client, ds, "coco", coco_bytes(COCO_GT), "instances.json")
    assert again.status_code == 201 and again.json()["result"]["classes_created"] == []
    assert gt_state(engine, ds) == state
    rows = {i["global_key"]: i for i in (await client.get(f"/v1/datasets/{ds}/rows")).json()["items"]}
    assert [rows[k]["num_annotations"] for k in ("img/a.jpg", "img/b.jpg", "img/c.jpg")] == [2, 1, 0]


async def test_yolo_ground_truth_zip(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    data = zip_bytes(
        {
            "data.yaml": "names:\n  0: person\n  1: car\n",
            "labels/img/a.txt": "0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.1 0.1\n",
            "labels/img/b.txt": "",
        }
    )
    r = await import_gt(client, ds, "yolo", data, "yolo.zip")
    assert r.status_code == 201, r.text
    assert gt_state(engine, ds) == [
        ("img/a.jpg", "car", 32.0, 24.0, 64.0, 48.0, False, 3072.0),
        ("img/a.jpg", "person", 240.0, 120.0, 160.0, 240.0, False, 38400.0),
    ]


async def test_voc_ground_truth(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    xml = (
        "<annotation><filename>img/b.jpg</filename><size><width>320</width><height>240</height></size>"
        "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>20</ymin>"
        "<xmax>110.5</xmax><ymax>220</ymax></bndbox></object></annotation>"
    )
    r = await import_gt(client, ds, "voc", xml.encode(), "b.xml")
    assert r.status_code == 201, r.text
    assert gt_state(engine, ds) == [("img/b.jpg", "dog", 10.0, 20.0, 100.5, 200.0, False, 20100.0)]


async def test_labelbox_ground_truth(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    nd = (
        b'{"uuid": "u1", "name": "cat", "dataRow": {"globalKey": "img/c.jpg"},'
        b' "bbox": {"top": 5, "left": 6, "height": 7, "width": 8}}\n\n'
    )
    r = await import_gt(client, ds, "labelbox", nd, "labels.ndjson")
    assert r.status_code == 201, r.text
    assert gt_state(engine, ds) == [("img/c.jpg", "cat", 6.0, 5.0, 8.0, 7.0, False, 56.0)]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "labelbox"])
async def test_ground_truth_round_trip(client: httpx.AsyncClient, engine: Engine, fmt: str) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    before = gt_state(engine, ds)
    exported = await client.get(f"/v1/datasets/{ds}/export", params={"format": fmt})
    assert exported.status_code == 200, exported.text
    assert (await import_gt(client, ds, "coco", coco_bytes(EMPTY_GT))).status_code == 201
    assert gt_state(engine, ds) == []
    r = await import_gt(client, ds, fmt, exported.content, f"export.{fmt}")
    assert r.status_code == 201, r.text
    after = gt_state(engine, ds)
    # Boxes and classes always; iscrowd and area only where the format carries them (COCO).
    assert same_boxes(before, after, 6), (before, after)
    if fmt == "coco":
        assert [b[6:] for b in before] == [a[6:] for a in after]
    # Exporting again gives the same file (a fixed point).
    again = await client.get(f"/v1/datasets/{ds}/export", params={"format": fmt})
    if fmt in ("labelbox", "voc", "yolo"):
        assert len(again.content) > 0
    if fmt == "yolo":
        assert b"names" in exported.content or exported.content[:2] == b"PK"


async def _run(client: httpx.AsyncClient, name: str = "yolov8n") -> int:
    r = await client.post("/v1/runs", json={"name": name, "version": "1"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_coco_results_predictions(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    run = await _run(client)
    r = await import_preds(client, run, "coco", coco_bytes(COCO_RESULTS), "results.json", dataset_id=ds)
    assert r.status_code == 201, r.text
    assert r.json()["result"]["boxes"] == 4
    state = pred_state(engine, run)
    assert ("img/a.jpg", "person", 11.0, 21.0, 99.0, 198.5, 0.91) in state
    assert len(state) == 4
    got = (await client.get(f"/v1/runs/{run}")).json()
    assert got["splits"] == {"unassigned": 3}


async def test_predictions_without_confidence_count_as_one(client: httpx.AsyncClient, engine: Engine) -> None:
    await setup_dataset(client)
    await client.post("/v1/classes", json={"classes": [{"name": "car"}]})
    run = await _run(client)
    nd = b'{"name": "car", "dataRow": {"globalKey": "img/a.jpg"}, "bbox": {"top": 1, "left": 2, "height": 3, "width": 4}}\n'
    r = await import_preds(client, run, "labelbox", nd, "preds.ndjson")
    assert r.status_code == 201, r.text
    assert pred_state(engine, run) == [("img/a.jpg", "car", 2.0, 1.0, 4.0, 3.0, 1.0)]
    yolo = zip_bytes({"data.yaml": "names: [car]\n", "labels/a.txt": "0 0.5 0.5 0.5 0.5\n"})
    r = await import_preds(client, run, "yolo", yolo, "preds.zip")
    assert r.status_code == 201, r.text
    assert pred_state(engine, run) == [("img/a.jpg", "car", 160.0, 120.0, 320.0, 240.0, 1.0)]


async def test_ultralytics_predictions(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    await client.post("/v1/classes", json={"classes": [{"name": "person", "external_id": 0}]})
    run = await _run(client)
    doc = [
        {
            "path": "img/b.jpg",
            "results": [
                {
                    "name": "person",
                    "class": 0,
                    "confidence": 0.8,
                    "box": {"x1": 1.0, "y1": 2.0, "x2": 31.0, "y2": 42.0},
                }
            ],
        }
    ]
    r = await import_preds(client, run, "ultralytics", coco_bytes(doc), "ultra.json", dataset_id=ds)
    assert r.status_code == 201, r.text
    assert pred_state(engine, run) == [("img/b.jpg", "person", 1.0, 2.0, 30.0, 40.0, 0.8)]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "ultralytics", "labelbox"])
async def test_predictions_round_trip(client: httpx.AsyncClient, engine: Engine, fmt: str) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    run = await _run(client)
    assert (
        await import_preds(client, run, "coco", coco_bytes(COCO_RESULTS), dataset_id=ds)
    ).status_code == 201
    before = pred_state(engine, run)
    exported = await client.get(f"/v1/runs/{run}/predictions/export", params={"format": fmt})
    assert exported.status_code == 200, exported.text
    run2 = await _run(client, f"copy-{fmt}")
    r = await import_preds(client, run2, fmt, exported.content, f"export.{fmt}", dataset_id=ds)
    assert r.status_code == 201, r.text
    after = pred_state(engine, run2)
    assert same_boxes(before, after, 7), (before, after)  # boxes, classes and confidence
    # Importing the same file again changes nothing (idempotent).
    assert (await import_preds(client, run2, fmt, exported.content, dataset_id=ds)).status_code == 201
    assert pred_state(engine, run2) == after
