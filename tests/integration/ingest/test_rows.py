"""Data rows: multipart and streaming upload, content-addressed storage, thumbnails, idempotent upsert."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, text

from services.ingest.service.rows import tar_bytes
from shared.adapters.storage import ObjectStore
from shared.contracts.tasks import TaskName
from tests.integration.ingest.conftest import PREFIX, Sent, counts, image_bytes, make_dataset, upload

pytestmark = pytest.mark.integration


async def test_upload_records_size_hash_object_and_thumbnail(
    client: httpx.AsyncClient, engine: Engine, workspace: int, object_store: ObjectStore, sent: Sent
) -> None:
    ds = await make_dataset(client)
    jpg, png = image_bytes(640, 480), image_bytes(30, 90, fmt="PNG")
    r = await upload(client, ds, {"cam/a.jpg": jpg, "cam/b.png": png})
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (2, 0, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT global_key, width, height, sha256, object_key, thumbnail_key, media_type FROM data_rows"
                " WHERE workspace_id = :ws ORDER BY global_key"
            ),
            {"ws": workspace},
        ).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("cam/a.jpg", 640, 480), ("cam/b.png", 30, 90)]
    assert rows[0].sha256 == hashlib.sha256(jpg).hexdigest()
    assert rows[0].sha256 in rows[0].object_key  # content-addressed
    assert rows[1].media_type == "image/png"
    assert object_store.get(rows[0].object_key) == jpg
    thumb = Image.open(io.BytesIO(object_store.get(rows[0].thumbnail_key)))
    assert thumb.format == "WEBP" and max(thumb.size) == 256 and thumb.size == (256, 192)
    embed = sent.of(TaskName.search_embed_rows.value)
    assert sorted(i for p in embed for i in p["data_row_ids"]) == sorted(x["id"] for x in r.json()["rows"])
    assert sent.of(TaskName.search_match_slices.value)


async def test_same_key_twice_is_one_row_and_changed_bytes_update_it(
    client: httpx.AsyncClient, engine: Engine, workspace: int, sent: Sent, broker: Any
) -> None:
    ds = await make_dataset(client)
    first = await upload(client, ds, {"k1.jpg": image_bytes(), "k2.jpg": image_bytes(color=(0, 0, 255))})
    assert first.json()["created"] == 2
    ids = {r["global_key"]: r["id"] for r in first.json()["rows"]}
    sent.tasks.clear()
    broker.delete(PREFIX + "embeddings")
    again = await upload(client, ds, {"k1.jpg": image_bytes(), "k2.jpg": image_bytes(color=(0, 0, 255))})
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 0, 2)
    assert {r["global_key"]: r["id"] for r in again.json()["rows"]} == ids
    assert sent.tasks == []  # nothing changed, nothing to embed
    assert broker.llen(PREFIX + "embeddings") == 0
    changed = await upload(client, ds, {"k1.jpg": image_bytes(100, 50)})
    assert (changed.json()["updated"], changed.json()["rows"][0]["id"]) == (1, ids["k1.jpg"])
    assert counts(engine, workspace)["rows"] == 2
    with engine.connect() as conn:
        w, h = conn.execute(
            text("SELECT width, height FROM data_rows WHERE id = :i"), {"i": ids["k1.jpg"]}
        ).one()
    assert (w, h) == (100, 50)
    assert sent.of(TaskName.search_embed_rows.value) == [
        {"workspace_id": workspace, "data_row_ids": [ids["k1.jpg"]]}
    ]
    assert broker.llen(PREFIX + "embeddings") == 2  # embed + match_slices really reached the Redis broker


async def test_metadata_and_listing_pages(client: httpx.AsyncClient) -> None:
    ds = await make_dataset(client)
    files = {f"p/{i}.jpg": image_bytes(color=(i, i, i)) for i in range(5)}
    r = await client.post(
        f"/v1/datasets/{ds}/rows",
        files=[("files", (k, v, "image/jpeg")) for k, v in files.items()],
        data={"metadata": '{"p/0.jpg": {"camera": "north"}}'},
    )
    assert r.status_code == 200, r.text
    keys: list[str] = []
    cursor = None
    while True:
        page = await client.get(
            f"/v1/datasets/{ds}/rows", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        body = page.json()
        keys += [i["global_key"] for i in body["items"]]
        if body["items"] and body["items"][0]["global_key"] == "p/0.jpg":
            assert body["items"][0]["metadata"] == {"camera": "north"}
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert keys == list(files)
    got = await client.get(f"/v1/datasets/{ds}")
    assert got.json()["num_rows"] == 5


async def test_streaming_bulk_upload(client: httpx.AsyncClient, engine: Engine, workspace: int) -> None:
    ds = await make_dataset(client)
    files = [(f"folder/{i:03d}.jpg", image_bytes(color=(i, 0, 0))) for i in range(70)]
    body = tar_bytes(files)

    async def chunks() -> Any:
        for i in range(0, len(body), 10_000):
            yield body[i : i + 10_000]

    r = await client.post(
        f"/v1/datasets/{ds}/rows:stream", content=chunks(), headers={"Content-Type": "application/x-tar"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 70
    again = await client.post(f"/v1/datasets/{ds}/rows:stream", content=body)
    assert again.json()["unchanged"] == 70
    assert counts(engine, workspace)["rows"] == 70


async def test_global_key_is_unique_per_workspace(client: httpx.AsyncClient) -> None:
    a, b = await make_dataset(client, "a"), await make_dataset(client, "b")
    assert (await upload(client, a, {"x.jpg": image_bytes()})).status_code == 200
    r = await upload(client, b, {"x.jpg": image_bytes()})
    assert r.status_code == 409 and "x.jpg" in r.json()["detail"]


async def test_write_scope_and_token_are_required(ingest_app: Any, workspace: int) -> None:
    from shared.internal_auth import internal_headers

    transport = httpx.ASGITransport(app=ingest_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        assert (await c.get("/v1/datasets")).status_code == 401
        ro = internal_headers(workspace, {"read"})
        r = await c.post("/v1/datasets", json={"name": "n"}, headers=ro)
        assert r.status_code == 403
        assert (await c.get("/v1/datasets", headers=ro)).status_code == 200


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert set(r.json()["checks"]) == {"postgres", "redis", "s3"}
