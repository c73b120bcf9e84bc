"""Shared data for the box import tests: three images, a COCO ground truth, and DB readers."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, text

from tests.integration.ingest.conftest import image_bytes, make_dataset, upload

SIZES = {"img/a.jpg": (640, 480), "img/b.jpg": (320, 240), "img/c.jpg": (100, 100)}
COCO_IDS = {"img/a.jpg": 11, "img/b.jpg": 12, "img/c.jpg": 13}

COCO_GT: dict[str, Any] = {
    "images": [{"id": COCO_IDS[k], "file_name": k, "width": w, "height": h} for k, (w, h) in SIZES.items()],
    "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 11,
            "category_id": 1,
            "bbox": [10.5, 20.25, 100.125, 200.0],
            "area": 20025.0,
            "iscrowd": 0,
        },
        {"id": 2, "image_id": 11, "category_id": 3, "bbox": [300, 100, 50, 40], "iscrowd": 1, "area": 1500.5},
        {"id": 3, "image_id": 12, "category_id": 1, "bbox": [0, 0, 320, 240], "iscrowd": 0},
    ],
}

COCO_RESULTS: list[dict[str, Any]] = [
    {"image_id": 11, "category_id": 1, "bbox": [11.0, 21.0, 99.0, 198.5], "score": 0.91},
    {"image_id": 11, "category_id": 3, "bbox": [5.0, 5.0, 20.0, 30.0], "score": 0.12},
    {"image_id": 12, "category_id": 1, "bbox": [1.5, 2.5, 300.0, 200.0], "score": 0.5},
    {"image_id": 13, "category_id": 3, "bbox": [10.0, 10.0, 50.0, 50.0], "score": 0.77},
]

EMPTY_GT = {"images": COCO_GT["images"], "categories": COCO_GT["categories"], "annotations": []}


async def setup_dataset(client: httpx.AsyncClient, name: str = "boxes") -> int:
    ds = await make_dataset(client, name)
    r = await upload(client, ds, {k: image_bytes(w, h) for k, (w, h) in SIZES.items()})
    assert r.status_code == 200, r.text
    return ds


async def import_gt(
    client: httpx.AsyncClient, ds: int, fmt: str, data: bytes, name: str = "gt"
) -> httpx.Response:
    return await client.post(
        f"/v1/datasets/{ds}/annotations", params={"format": fmt}, files={"file": (name, data)}
    )


async def import_preds(
    client: httpx.AsyncClient, run: int, fmt: str, data: bytes, name: str = "preds", **params: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/runs/{run}/predictions", params={"format": fmt, **params}, files={"file": (name, data)}
    )


def gt_state(engine: Engine, ds: int) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT d.global_key, c.name, a.x, a.y, a.w, a.h, a.iscrowd, a.area FROM annotations a"
                    " JOIN data_rows d ON d.id = a.data_row_id JOIN classes c ON c.id = a.class_id"
                    " WHERE d.dataset_id = :ds ORDER BY 1, 2, 3, 4"
                ),
                {"ds": ds},
            )
        ]


def pred_state(engine: Engine, run: int) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT d.global_key, c.name, p.x, p.y, p.w, p.h, p.confidence FROM predictions p"
                    " JOIN data_rows d ON d.id = p.data_row_id JOIN classes c ON c.id = p.class_id"
                    " WHERE p.model_run_id = :run ORDER BY 1, 2, 3, 4"
                ),
                {"run": run},
            )
        ]


def same_boxes(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]], cols: int) -> bool:
    """Equal keys/classes and numbers within 1e-9 over the first ``cols`` columns."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[:2] != y[:2]:
            return False
        if any(abs(float(u) - float(v)) > 1e-9 for u, v in zip(x[2:cols], y[2:cols], strict=True)):
            return False
    return True


def coco_bytes(doc: Any) -> bytes:
    return orjson.dumps(doc)


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    return out.getvalue()
