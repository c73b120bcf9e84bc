"""Hostile inputs against the real ingest service (and the gateway where it applies), issue 10 item 4.

The whole list in one place; each line names the test that proves it (✓ = this module).

=========================  ==================================================================================
Input                      Covered by
=========================  ==================================================================================
corrupt images             ingest/test_bad_input.py::test_bad_image_rejects_whole_upload (truncated JPEG,
                           PNG with a broken CRC, text named .jpg, empty file): 415/422, nothing written;
                           ✓ test_corrupt_image_in_stream_upload (the tar stream path)
decompression bomb         ✓ test_decompression_bomb_header (PNG header claiming 100,000 x 100,000 px,
                           a few hundred bytes): 413 before any decoding; ingest/test_bad_input.py (4.2 MP
                           over the pixel limit, 4 MB over the byte limit)
huge JSON                  ✓ test_huge_json_is_413 (annotation and prediction files past
                           settings.limits.max_json_bytes); ingest/test_bad_input.py::test_oversize_request
                           and ::test_oversize_chunked_stream (request bodies past max_request_bytes)
NaN / infinite boxes       ✓ test_nan_and_infinite_boxes (COCO ``NaN``/``Infinity`` literals, 1e999, NaN
                           scores); ingest/test_bad_input.py GT_CASES "nan-yolo"
SQL-looking values         ✓ test_sql_looking_gallery_filters (gateway gallery filter values, class names,
                           metadata keys, sort fields), ✓ test_sql_looking_names_are_data (ingest names
                           and keys stored verbatim); data_rows still there, counts unchanged
path traversal in keys     ✓ test_path_traversal_and_nul_keys ("../../etc/passwd", absolute paths, NUL
                           bytes, backslashes, in uploads and COCO file names); ingest/test_bad_input.py::
                           test_path_traversal_keys and GT_CASES "yolo-traversal" (zip member paths)
unicode in names           ✓ test_unicode_names_round_trip (emoji, RTL, combining marks, NFC vs NFD kept
                           apart, in dataset, class, run names and global keys)
NUL bytes in JSON strings  ✓ test_nul_in_json_names (Postgres refuses NUL: a clear 422, not a 500)
fuzzed requests            ✓ test_ingest_schemathesis.py; gateway/test_schemathesis.py
=========================  ==================================================================================
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image
from sqlalchemy import Engine, text

from services.ingest.main import create_app
from shared.internal_auth import internal_headers
from shared.settings import S3Settings
from tests.fixtures.gateway import World
from tests.integration.reliability.payloads import png_bomb
from tests.integration.reliability.servers import ingest_settings, new_workspace

pytestmark = pytest.mark.integration

MAX_JSON = 1_000_000  # servers.ingest_settings' limits.max_json_bytes


@pytest.fixture(scope="session")
async def hostile_app(db_url: str, s3_settings: S3Settings) -> AsyncIterator[Any]:
    app = create_app(ingest_settings(db_url, s3_settings))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def ingest(hostile_app: Any, db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    ws = new_workspace(db_url, "hostile")
    transport = httpx.ASGITransport(app=hostile_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ingest", headers=internal_headers(ws), timeout=60
    ) as c:
        yield c, ws


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def _rows(engine: Engine, ws: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM data_rows WHERE workspace_id = :w"), {"w": ws}
            ).scalar_one()
        )


def _boxes(engine: Engine, ws: int) -> tuple[int, int]:
    with engine.connect() as conn:
        gt = conn.execute(text("SELECT count(*) FROM annotations WHERE workspace_id = :w"), {"w": ws})
        pr = conn.execute(
            text(
                "SELECT count(*) FROM predictions p JOIN model_runs r ON r.id = p.model_run_id"
                " WHERE r.workspace_id = :w"
            ),
            {"w": ws},
        )
        return int(gt.scalar_one()), int(pr.scalar_one())


async def _dataset(c: httpx.AsyncClient, name: str = "hostile") -> int:
    r = await c.post("/v1/datasets", json={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _upload(c: httpx.AsyncClient, ds: int, files: dict[str, bytes]) -> httpx.Response:
    return await c.post(
        f"/v1/datasets/{ds}/rows",
        files=[("files", ("f", v, "application/octet-stream")) for v in files.values()],
        data={"global_keys": list(files)},
    )


async def test_decompression_bomb_header(ingest: tuple[httpx.AsyncClient, int], engine: Engine) -> None:
    c, ws = ingest
    ds = await _dataset(c)
    bomb = png_bomb()
    assert len(bomb) < 200
    r = await _upload(c, ds, {"ok.jpg": _jpeg(), "bomb.png": bomb})
    assert r.status_code == 413, r.text
    body = r.json()
    assert "pixel limit" in body["detail"] and body["context"]["reason"] == "too_many_pixels", body
    assert _rows(engine, ws) == 0


async def test_corrupt_image_in_stream_upload(ingest: tuple[httpx.AsyncClient, int], engine: Engine) -> None:
    c, ws = ingest
    ds = await _dataset(c)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("ok.jpg", _jpeg()), ("bad.jpg", _jpeg()[:200]), ("bomb.png", png_bomb())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    r = await c.post(f"/v1/datasets/{ds}/rows:stream", content=buf.getvalue())
    assert 400 <= r.status_code < 500, r.text
    assert "bad.jpg" in r.json()["detail"] or "bomb.png" in r.json()["detail"], r.json()
    assert _rows(engine, ws) == 0


async def _dataset_with_rows(c: httpx.AsyncClient) -> int:
    ds = await _dataset(c, "with-rows")
    r = await _upload(c, ds, {"img/a.jpg": _jpeg(640, 480), "img/b.jpg": _jpeg(320, 240)})
    assert r.status_code == 200, r.text
    return ds


def _coco(bbox: Any, score: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "images": [{"id": 1, "file_name": "img/a.jpg", "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox}],
    }
    if score is not None:
        doc["annotations"][0]["score"] = score
    return doc


async def test_huge_json_is_413(ingest: tuple[httpx.AsyncClient, int], engine: Engine) -> None:
    c, ws = ingest
    ds = await _dataset_with_rows(c)
    doc = _coco([1, 1, 10, 10])
    doc["info"] = {"padding": "x" * (MAX_JSON + 10)}
    huge = orjson.dumps(doc)
    r = await c.post(
        f"/v1/datasets/{ds}/annotations", params={"format": "coco"}, files={"file": ("gt.json", huge)}
    )
    assert r.status_code == 413, r.text
    assert str(MAX_JSON) in r.json()["detail"], r.json()
    run = (await c.post("/v1/runs", json={"name": "huge"})).json()["id"]
    preds = orjson.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}] * 40_000)
    assert len(preds) > MAX_JSON
    r = await c.post(
        f"/v1/runs/{run}/predictions", params={"format": "coco"}, files={"file": ("p.json", preds)}
    )
    assert r.status_code == 413, r.text
    assert _boxes(engine, ws) == (0, 0)


NAN_DOCS = [
    ("nan-literal", b'"bbox": [NaN, 1, 10, 10]'),
    ("infinity-literal", b'"bbox": [1, 1, Infinity, 10]'),
    ("overflow-1e999", b'"bbox": [1, 1, 1e999, 10]'),
    ("string-nan", b'"bbox": [1, 1, "nan", 10]'),
    ("null-coordinate", b'"bbox": [1, null, 10, 10]'),
]


@pytest.mark.parametrize(("case", "bbox"), NAN_DOCS, ids=[n for n, _ in NAN_DOCS])
async def test_nan_and_infinite_boxes(
    ingest: tuple[httpx.AsyncClient, int], engine: Engine, case: str, bbox: bytes
) -> None:
    c, ws = ingest
    ds = await _dataset_with_rows(c)
    data = orjson.dumps(_coco("BBOX")).replace(b'"bbox":"BBOX"', bbox.replace(b'"bbox": ', b'"bbox":'))
    r = await c.post(
        f"/v1/datasets/{ds}/annotations", params={"format": "coco"}, files={"file": ("gt.json", data)}
    )
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    assert set(r.json()) >= {"error", "detail"}
    run = (await c.post("/v1/runs", json={"name": f"nan-{case}"})).json()["id"]
    results = b'[{"image_id": 1, "category_id": 1, ' + bbox + b', "score": 0.5}]'
    r = await c.post(
        f"/v1/runs/{run}/predictions", params={"format": "coco"}, files={"file": ("p.json", results)}
    )
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    assert _boxes(engine, ws) == (0, 0)


@pytest.mark.parametrize("score", [b"NaN", b"Infinity", b"-1e999"])
async def test_nan_scores(ingest: tuple[httpx.AsyncClient, int], engine: Engine, score: bytes) -> None:
    c, ws = ingest
    await _dataset_with_rows(c)
    run = (await c.post("/v1/runs", json={"name": "nan-score"})).json()["id"]
    results = b'[{"image_id": "img/a.jpg", "category_id": 1, "bbox": [1, 1, 5, 5], "score": ' + score + b"}]"
    r = await c.post(
        f"/v1/runs/{run}/predictions", params={"format": "coco"}, files={"file": ("p.json", results)}
    )
    assert 400 <= r.status_code < 500, (score, r.status_code, r.text)
    assert _boxes(engine, ws) == (0, 0)


TRAVERSAL = [
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "a/../../b.jpg",
    "ok\x00.jpg",
    "nul\x00",
]


@pytest.mark.parametrize(
    "key", TRAVERSAL, ids=["dotdot", "absolute", "windows", "inner-dotdot", "nul", "nul-end"]
)
async def test_path_traversal_and_nul_keys(
    ingest: tuple[httpx.AsyncClient, int], engine: Engine, key: str
) -> None:
    c, ws = ingest
    ds = await _dataset(c)
    r = await _upload(c, ds, {"fine.jpg": _jpeg(), key: _jpeg()})
    assert 400 <= r.status_code < 500, r.text
    assert _rows(engine, ws) == 0
    # in an annotation file the key is only a name to look up: an unknown image, nothing written
    ds2 = await _dataset_with_rows(c)
    doc = _coco([1, 1, 5, 5])
    doc["images"][0]["file_name"] = key
    r = await c.post(
        f"/v1/datasets/{ds2}/annotations",
        params={"format": "coco"},
        files={"file": ("gt.json", orjson.dumps(doc))},
    )
    assert 400 <= r.status_code < 500, r.text
    assert _boxes(engine, ws) == (0, 0)
    # in run membership: data to look up, never a path
    run = (await c.post("/v1/runs", json={"name": "trav"})).json()["id"]
    r = await c.put(f"/v1/runs/{run}/rows", json=[{"global_key": key, "split": "test"}])
    assert 400 <= r.status_code < 500, r.text


async def test_nul_in_json_names(ingest: tuple[httpx.AsyncClient, int], engine: Engine) -> None:
    c, _ = ingest
    for path, body in [
        ("/v1/datasets", {"name": "bad\x00name"}),
        ("/v1/runs", {"name": "run\x00"}),
        ("/v1/classes", {"classes": [{"name": "cls\x00"}]}),
    ]:
        r = await c.post(path, json=body)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert set(r.json()) >= {"error", "detail"}


UNICODE = [
    "🚗 cars & 🚲 bikes",
    "مجموعة البيانات",  # Arabic, right to left
    "שלום\u200fעולם",  # Hebrew with a right-to-left mark
    "e\u0301te\u0301",  # combining acute accents (NFD)
    "\u00e9t\u00e9",  # the same word precomposed (NFC): a different name
    "Z̷͇̿a̴̤͐l̸̰̕g̵̱̀o̶͚͝",  # stacked combining marks
    "👨‍👩‍👧‍👦 family",  # zero-width joiners
]


async def test_unicode_names_round_trip(ingest: tuple[httpx.AsyncClient, int]) -> None:
    c, _ = ingest
    ids = {}
    for name in UNICODE:
        r = await c.post("/v1/datasets", json={"name": name, "description": name * 3})
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
        assert r.json()["name"] == name
    listed = {d["id"]: d["name"] for d in (await c.get("/v1/datasets")).json()}
    for name, i in ids.items():
        assert listed[i] == name
        got = (await c.get(f"/v1/datasets/{i}")).json()
        assert got["name"] == name and got["description"] == name * 3
    r = await c.post("/v1/classes", json={"classes": [{"name": n} for n in UNICODE]})
    assert r.status_code == 201, r.text
    assert sorted(x["name"] for x in (await c.get("/v1/classes")).json()) == sorted(UNICODE)
    run = await c.post("/v1/runs", json={"name": UNICODE[0]})
    assert run.status_code == 201 and run.json()["name"] == UNICODE[0]
    # global keys: unicode file names round-trip byte for byte (NFC and NFD are two rows)
    ds = ids[UNICODE[0]]
    keys = [f"imgs/{n}.jpg" for n in UNICODE]
    r = await _upload(c, ds, {k: _jpeg() for k in keys})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == len(keys)
    page = (await c.get(f"/v1/datasets/{ds}/rows")).json()
    assert sorted(x["global_key"] for x in page["items"]) == sorted(keys)


SQLISH = [
    "'; DROP TABLE data_rows; --",
    '" OR 1=1 --',
    "1; DELETE FROM predictions",
    "') UNION SELECT id, secret FROM api_keys --",
]


async def test_sql_looking_names_are_data(ingest: tuple[httpx.AsyncClient, int], engine: Engine) -> None:
    c, ws = ingest
    for s in SQLISH:
        r = await c.post("/v1/datasets", json={"name": s})
        assert r.status_code == 201 and r.json()["name"] == s, r.text
    r = await c.post("/v1/classes", json={"classes": [{"name": s} for s in SQLISH]})
    assert r.status_code == 201, r.text
    assert sorted(x["name"] for x in (await c.get("/v1/classes")).json()) == sorted(SQLISH)
    ds = await _dataset(c, "sqlish-keys")
    r = await _upload(c, ds, {f"{s}.jpg": _jpeg() for s in SQLISH})
    assert r.status_code in (200, 422), r.text  # stored verbatim, or refused as a bad key; never run
    assert _rows(engine, ws) == (len(SQLISH) if r.status_code == 200 else 0)


async def test_sql_looking_gallery_filters(gw: httpx.AsyncClient, world: World, engine: Engine) -> None:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM data_rows")).scalar_one()
    run = world.runs[0].id
    h = world.ws.h(world.ws.read)
    bodies: list[dict[str, Any]] = []
    for s in SQLISH:
        bodies += [
            {"filter": {"all": [{"field": "split", "op": "eq", "value": s}]}},
            {"filter": {"all": [{"field": "split", "op": "in", "value": [s, "test"]}]}},
            {"filter": {"all": [{"field": f"metadata.{s}", "op": "eq", "value": s}]}},
            {"filter": {"all": [{"field": "metadata.camera", "op": "eq", "value": s}]}},
            {"filter": {"all": [{"field": "recall", "class_name": s, "op": "gte", "value": 0}]}},
            {"filter": {"all": [{"field": "class_in_gt", "op": "eq", "value": s}]}},
            {"filter": {"any": [{"field": "iou", "op": "lt", "value": s}]}},
            {"filter": {"all": [{"field": s, "op": "eq", "value": 1}]}},
            {"sort": {"field": s}},
            {"sort": {"field": "iou", "class_name": s}},
            {"cursor": s},
        ]
    statuses = []
    for body in bodies:
        r = await gw.post(f"/v1/runs/{run}/gallery", json=body, headers=h)
        statuses.append(r.status_code)
        assert r.status_code < 500, (body, r.status_code, r.text)
        if r.status_code == 200:
            assert r.json()["rows"] == [], (body, r.json()["rows"][:2])  # no row has such a value
        else:
            assert 400 <= r.status_code < 500 and "detail" in r.json()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('public.data_rows')")).scalar_one() is not None
        assert conn.execute(text("SELECT count(*) FROM data_rows")).scalar_one() == before
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)  # both paths were exercised
