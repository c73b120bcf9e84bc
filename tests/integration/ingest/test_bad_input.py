"""Bad input: a 4xx naming the file, line/object and reason; nothing of that import is written; no tasks."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image
from sqlalchemy import Engine

from tests.integration.ingest.boxes import (
    COCO_GT,
    COCO_RESULTS,
    coco_bytes,
    gt_state,
    import_gt,
    import_preds,
    setup_dataset,
    zip_bytes,
)
from tests.integration.ingest.conftest import Sent, counts, image_bytes, make_dataset, upload

pytestmark = pytest.mark.integration


def _truncated() -> bytes:
    data = image_bytes(200, 200, color=(10, 200, 30))
    return data[: len(data) // 2]


def _corrupt() -> bytes:
    data = bytearray(image_bytes(200, 200, fmt="PNG"))
    mid = len(data) // 2
    data[mid : mid + 8] = b"\x00\x11\x22\x33\x44\x55\x66\x77"  # inside IDAT: the CRC no longer matches
    return bytes(data)


def _huge_pixels() -> bytes:
    out = io.BytesIO()
    Image.new("L", (2100, 2000)).save(out, "PNG")  # 4.2 MP > the 4 MP test limit, tiny file
    return out.getvalue()


BAD_IMAGES = [
    ("truncated.jpg", _truncated(), 422, "truncated"),
    ("corrupt.png", _corrupt(), 422, "corrupt"),
    ("notes.jpg", b"hello, I am text, not an image", 415, "not an image"),
    ("empty.jpg", b"", 422, "empty"),
    ("big.png", _huge_pixels(), 413, "pixel"),
    ("heavy.jpg", b"\xff\xd8" + b"\x00" * 4_000_100, 413, "byte"),
]


@pytest.mark.parametrize(("name", "data", "status", "reason"), BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
async def test_bad_image_rejects_whole_upload(
    client: httpx.AsyncClient,
    engine: Engine,
    workspace: int,
    sent: Sent,
    name: str,
    data: bytes,
    status: int,
    reason: str,
) -> None:
    ds = await make_dataset(client)
    before = counts(engine, workspace)
    r = await upload(client, ds, {"good1.jpg": image_bytes(), name: data, "good2.jpg": image_bytes()})
    assert r.status_code == status, r.text
    assert name in r.json()["detail"] and reason in r.json()["detail"].lower()
    assert counts(engine, workspace) == before
    assert sent.tasks == []


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs/a.jpg", "a/../../b.jpg", "a\\b.jpg", "a/./b.jpg", "bad\x01.jpg"]
)
async def test_path_traversal_keys(
    client: httpx.AsyncClient, engine: Engine, workspace: int, key: str
) -> None:
    ds = await make_dataset(client)
    r = await upload(client, ds, {"ok.jpg": image_bytes(), key: image_bytes()})
    assert r.status_code == 422, r.text
    assert "global key" in r.json()["detail"]
    assert counts(engine, workspace)["rows"] == 0


async def test_duplicate_keys_in_one_upload(
    client: httpx.AsyncClient, engine: Engine, workspace: int
) -> None:
    ds = await make_dataset(client)
    r = await client.post(
        f"/v1/datasets/{ds}/rows",
        files=[("files", ("a.jpg", image_bytes())), ("files", ("b.jpg", image_bytes()))],
        data={"global_keys": ["same.jpg", "same.jpg"]},
    )
    assert r.status_code == 422 and "duplicate global key 'same.jpg'" in r.json()["detail"]
    assert counts(engine, workspace)["rows"] == 0


async def test_oversize_request(client: httpx.AsyncClient, engine: Engine, workspace: int) -> None:
    ds = await make_dataset(client)
    r = await client.post(f"/v1/datasets/{ds}/rows:stream", content=b"\0" * 64_000_001)
    assert r.status_code == 413, r.text
    assert counts(engine, workspace)["rows"] == 0


async def test_oversize_chunked_stream(client: httpx.AsyncClient, engine: Engine, workspace: int) -> None:
    """No Content-Length: the stream is cut off when it passes the limit."""
    from services.ingest.service.rows import tar_bytes

    ds = await make_dataset(client)
    head = tar_bytes([("ok.jpg", image_bytes())])[:-1024]

    async def body() -> Any:
        yield head
        for _ in range(70):
            yield b"\0" * 1_000_000

    r = await client.post(f"/v1/datasets/{ds}/rows:stream", content=body())
    assert r.status_code == 413, r.text
    assert counts(engine, workspace)["rows"] == 0


Case = tuple[str, str, bytes, str]


def _coco(**changes: Any) -> bytes:
    doc = orjson.loads(orjson.dumps(COCO_GT))
    for k, v in changes.items():
        doc[k] = v
    return coco_bytes(doc)


def _ann(bbox: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [*COCO_GT["annotations"][:2], {"id": 9, "image_id": 12, "category_id": 1, "bbox": bbox, **extra}]


GT_CASES: list[tuple[str, str, bytes, int, str]] = [
    ("malformed-json", "coco", b'{"images": [', 400, "gt: malformed JSON at line 1"),
    (
        "negative-box",
        "coco",
        _coco(annotations=_ann([10, 10, -5, 5])),
        422,
        "annotations[2]: negative width/height",
    ),
    (
        "outside-box",
        "coco",
        _coco(annotations=_ann([1000, 1000, 10, 10])),
        422,
        "annotations[2]: box lies entirely outside",
    ),
    (
        "unknown-category",
        "coco",
        _coco(annotations=[{"id": 1, "image_id": 11, "category_id": 99, "bbox": [1, 1, 2, 2]}]),
        422,
        "annotations[0]: unknown category_id 99",
    ),
    (
        "unknown-image",
        "coco",
        _coco(images=[*COCO_GT["images"], {"id": 99, "file_name": "nope.jpg"}]),
        422,
        "unknown image: no data row matches global key 'nope.jpg'",
    ),
    (
        "duplicate-image",
        "coco",
        _coco(images=[*COCO_GT["images"], {"id": 98, "file_name": "img/a.jpg"}]),
        422,
        "duplicate file_name 'img/a.jpg'",
    ),
    (
        "nan-yolo",
        "yolo",
        zip_bytes({"data.yaml": "names: [person]", "labels/img/a.txt": "0 0.5 nan 0.1 0.1\n"}),
        422,
        "gt:labels/img/a.txt line 1: a coordinate is NaN",
    ),
    ("yolo-no-yaml", "yolo", zip_bytes({"labels/img/a.txt": "0 0.5 0.5 0.1 0.1\n"}), 400, "data.yaml"),
    (
        "yolo-bad-class",
        "yolo",
        zip_bytes({"data.yaml": "names: [person]", "labels/img/a.txt": "3 0.5 0.5 0.1 0.1\n"}),
        422,
        "line 1: unknown class index 3",
    ),
    (
        "yolo-traversal",
        "yolo",
        zip_bytes({"data.yaml": "names: [person]", "../evil.txt": "0 0.5 0.5 0.1 0.1\n"}),
        422,
        "path traversal",
    ),
    (
        "malformed-ndjson",
        "labelbox",
        b'{"name": "cat", "dataRow": {"globalKey": "img/a.jpg"}, "bbox": {"top": 1, "left": 1, "height": 2, "width": 2}}\n'
        b'{"name": "cat", "dataRow": \n',
        400,
        "gt line 2: malformed JSON",
    ),
    (
        "labelbox-unknown-key",
        "labelbox",
        b'{"name": "cat", "dataRow": {"globalKey": "ghost.jpg"}, "bbox": {"top": 1, "left": 1, "height": 2, "width": 2}}\n',
        422,
        "gt line 1: unknown image: no data row matches global key 'ghost.jpg'",
    ),
    (
        "voc-inverted",
        "voc",
        b"<annotation><filename>img/a.jpg</filename><object><name>cat</name><bndbox><xmin>50</xmin><ymin>5</ymin>"
        b"<xmax>10</xmax><ymax>20</ymax></bndbox></object></annotation>",
        422,
        "gt: object[0]: negative width/height (inverted box)",
    ),
    ("voc-malformed", "voc", b"<annotation><filename>img/a.jpg</filename>", 400, "malformed XML"),
]


@pytest.mark.parametrize(("case", "fmt", "data", "status", "message"), GT_CASES, ids=[c[0] for c in GT_CASES])
async def test_bad_ground_truth_changes_nothing(
    client: httpx.AsyncClient,
    engine: Engine,
    workspace: int,
    sent: Sent,
    case: str,
    fmt: str,
    data: bytes,
    status: int,
    message: str,
) -> None:
    ds = await setup_dataset(client)
    # Rows in a run: a successful GT import would ask for metrics; a failed one must not.
    run = (await client.post("/v1/runs", json={"name": "r"})).json()["id"]
    await client.put(f"/v1/runs/{run}/rows", json=[{"global_key": "img/a.jpg", "split": "test"}])
    assert (await import_gt(client, ds, "coco", _coco())).status_code == 201
    before, boxes = counts(engine, workspace), gt_state(engine, ds)
    sent.tasks.clear()
    r = await import_gt(client, ds, fmt, data)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"], r.json()["detail"]
    assert counts(engine, workspace) == before and gt_state(engine, ds) == boxes
    assert sent.tasks == []
    job = (await client.get(f"/v1/jobs/{r.json()['context']['job_id']}")).json()
    assert job["status"] == "failed" and message in job["errors"][0]["detail"]


async def test_unknown_class_name_without_create(
    client: httpx.AsyncClient, engine: Engine, workspace: int
) -> None:
    ds = await setup_dataset(client)
    nd = b'{"name": "zebra", "dataRow": {"globalKey": "img/a.jpg"}, "bbox": {"top": 1, "left": 1, "height": 2, "width": 2}}\n'
    r = await client.post(
        f"/v1/datasets/{ds}/annotations",
        params={"format": "labelbox", "create_classes": "false"},
        files={"file": ("lb.ndjson", nd)},
    )
    assert r.status_code == 422 and "lb.ndjson line 1: unknown class name 'zebra'" in r.json()["detail"]
    assert counts(engine, workspace)["classes"] == 0


async def test_boxes_crossing_the_edge_are_clipped(client: httpx.AsyncClient, engine: Engine) -> None:
    ds = await setup_dataset(client)
    doc = _coco(annotations=[{"id": 1, "image_id": 12, "category_id": 1, "bbox": [300, -10, 100, 50]}])
    r = await import_gt(client, ds, "coco", doc)
    assert r.status_code == 201 and r.json()["result"]["clipped"] == 1
    assert gt_state(engine, ds) == [("img/b.jpg", "person", 300.0, 0.0, 20.0, 40.0, False, 800.0)]


PRED_CASES: list[tuple[str, str, Callable[[], bytes], int, str]] = [
    (
        "unknown-class",
        "labelbox",
        lambda: (
            b'{"name": "zebra", "dataRow": {"globalKey": "img/a.jpg"}, "bbox": {"top": 1, "left": 1, "height": 2,'
            b' "width": 2}, "confidence": 0.5}\n'
        ),
        422,
        "preds line 1: unknown class name 'zebra'",
    ),
    (
        "unknown-category-id",
        "coco",
        lambda: coco_bytes([{"image_id": 11, "category_id": 42, "bbox": [1, 1, 2, 2], "score": 0.3}]),
        422,
        "preds: [0]: unknown class id 42",
    ),
    (
        "confidence-above-1",
        "coco",
        lambda: coco_bytes(
            [*COCO_RESULTS, {"image_id": 11, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 1.5}]
        ),
        422,
        "preds: [4]: confidence is not a number in [0, 1]",
    ),
    (
        "inverted-ultralytics",
        "ultralytics",
        lambda: coco_bytes(
            {
                "img/a.jpg": [
                    {"name": "person", "confidence": 0.5, "box": {"x1": 50, "y1": 1, "x2": 10, "y2": 9}}
                ]
            }
        ),
        422,
        "preds: ['img/a.jpg'][0]: negative width/height",
    ),
    (
        "unknown-image-id",
        "coco",
        lambda: coco_bytes([{"image_id": 777, "category_id": 1, "bbox": [1, 1, 2, 2]}]),
        422,
        "no data row matches image id 777",
    ),
    (
        "missing-bbox",
        "coco",
        lambda: coco_bytes([{"image_id": 11, "category_id": 1}]),
        422,
        'preds: [0]: missing "bbox"',
    ),
    (
        "bbox-wrong-length",
        "coco",
        lambda: coco_bytes([{"image_id": 11, "category_id": 1, "bbox": [1, 2, 3]}]),
        422,
        "preds: [0]: bbox must be a list of 4 numbers",
    ),
    (
        "duplicate-image",
        "ultralytics",
        lambda: b'[{"path": "img/a.jpg", "results": []}, {"path": "img/a.jpg", "results": []}]',
        422,
        "duplicate image 'img/a.jpg'",
    ),
]


@pytest.mark.parametrize(
    ("case", "fmt", "make", "status", "message"), PRED_CASES, ids=[c[0] for c in PRED_CASES]
)
async def test_bad_predictions_change_nothing(
    client: httpx.AsyncClient,
    engine: Engine,
    workspace: int,
    sent: Sent,
    case: str,
    fmt: str,
    make: Callable[[], bytes],
    status: int,
    message: str,
) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", _coco())).status_code == 201
    run = (await client.post("/v1/runs", json={"name": "r"})).json()["id"]
    assert (
        await import_preds(client, run, "coco", coco_bytes(COCO_RESULTS), dataset_id=ds)
    ).status_code == 201
    before = counts(engine, workspace)
    sent.tasks.clear()
    r = await import_preds(client, run, fmt, make(), dataset_id=ds)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"], r.json()["detail"]
    assert counts(engine, workspace) == before
    assert sent.tasks == []


async def test_unknown_and_duplicate_keys_in_run_rows(
    client: httpx.AsyncClient, engine: Engine, workspace: int
) -> None:
    await setup_dataset(client)
    run = (await client.post("/v1/runs", json={"name": "r"})).json()["id"]
    r = await client.put(
        f"/v1/runs/{run}/rows",
        json=[{"global_key": "img/a.jpg", "split": "test"}, {"global_key": "ghost.jpg", "split": "test"}],
    )
    assert r.status_code == 422 and "item 1: unknown global key 'ghost.jpg'" in r.json()["detail"]
    r = await client.put(
        f"/v1/runs/{run}/rows",
        json=[{"global_key": "img/a.jpg", "split": "test"}, {"global_key": "img/a.jpg", "split": "train"}],
    )
    assert r.status_code == 422 and "appears twice" in r.json()["detail"]
    r = await client.put(f"/v1/runs/{run}/rows", json=[{"global_key": "img/a.jpg", "split": "holdout"}])
    assert r.status_code == 422
    assert counts(engine, workspace)["run_rows"] == 0


Call = Callable[[], Awaitable[httpx.Response]]
