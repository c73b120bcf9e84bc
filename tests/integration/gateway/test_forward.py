"""Forwarded routes reach the real ingest and search apps (in-process over httpx.ASGITransport) with the
caller's workspace; each workspace sees only its own datasets and slices; an absent service is a 503."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fixtures.gateway import gateway_settings, new_workspace

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def fwd(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from services.gateway.main import create_app
    from services.ingest.main import create_app as ingest_app
    from services.search.main import create_app as search_app
    from shared.adapters.vectors import open_vector_store

    settings = gateway_settings(db_url)
    ingest = ingest_app(settings)
    search = search_app(
        settings,
        store=open_vector_store(settings.qdrant, backend="memory"),
        sender=lambda name, payload: None,
        inprocess_worker=False,
    )
    async with AsyncExitStack() as stack:
        for app in (ingest, search):
            await stack.enter_async_context(app.router.lifespan_context(app))
        gateway = create_app(
            settings,
            upstream_transports={
                "ingest": httpx.ASGITransport(app=ingest),
                "search": httpx.ASGITransport(app=search),
            },
        )
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")
        await stack.enter_async_context(client)
        yield client


async def test_datasets_and_slices_are_per_workspace(fwd: httpx.AsyncClient) -> None:
    a, b = await new_workspace(fwd), await new_workspace(fwd)
    name = f"ds-{uuid.uuid4().hex[:6]}"
    r = await fwd.post("/v1/datasets", json={"name": name}, headers=a.h(a.write))
    assert r.status_code == 201, r.text
    ds_id = r.json()["id"]
    assert (await fwd.post("/v1/datasets", json={"name": "x"}, headers=a.h(a.read))).status_code == 403
    mine = (await fwd.get("/v1/datasets", headers=a.h(a.read))).json()
    theirs = (await fwd.get("/v1/datasets", headers=b.h(b.read))).json()
    assert name in {d["name"] for d in mine} and name not in {d["name"] for d in theirs}
    assert (await fwd.get(f"/v1/datasets/{ds_id}", headers=b.h(b.read))).status_code == 404
    # query strings pass through
    rows = await fwd.get(f"/v1/datasets/{ds_id}/rows", params={"limit": 5}, headers=a.h(a.read))
    assert rows.status_code == 200, rows.text

    s = await fwd.post(
        "/v1/slices", json={"name": "unlabeled", "filter": {"annotation": "none"}}, headers=a.h(a.write)
    )
    assert s.status_code == 201, s.text
    slice_id = s.json()["id"]
    listed_b = (await fwd.get("/v1/slices", headers=b.h(b.read))).json()["slices"]
    assert slice_id not in {x["id"] for x in listed_b}
    cat_a = await fwd.post(
        "/v1/catalog/query", json={"selection": {"slice_id": slice_id}}, headers=a.h(a.read)
    )
    assert cat_a.status_code == 200
    cat_b = await fwd.post(
        "/v1/catalog/query", json={"selection": {"slice_id": slice_id}}, headers=b.h(b.read)
    )
    assert cat_b.status_code == 404
    # the upstream's own refusals keep the one error shape
    bad = await fwd.post("/v1/slices", json={"name": ""}, headers=a.h(a.write))
    assert 400 <= bad.status_code < 500 and "detail" in bad.json()


async def test_similar_to_in_a_filter_goes_through_search(fwd: httpx.AsyncClient) -> None:
    a = await new_workspace(fwd)
    r = await fwd.post(
        "/v1/runs/999999/gallery",
        json={"filter": {"all": [{"field": "similar_to", "value": {"data_row_ids": [1]}}]}},
        headers=a.h(a.read),
    )
    assert r.status_code == 404 and "999999" in r.json()["detail"]


async def test_absent_service_is_a_503(db_url: str) -> None:
    from services.gateway.main import create_app

    settings = gateway_settings(db_url)
    settings.services.ingest = "http://127.0.0.1:9"
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        ws = await new_workspace(client)
        for method, path, body in (("get", "/v1/datasets", None), ("post", "/v1/runs", {"name": "r"})):
            r = await client.request(method, path, json=body, headers=ws.h())
            assert r.status_code == 503, r.text
            err: dict[str, Any] = r.json()
            assert err["error"] == "dependency_unavailable" and err["context"]["service"] == "ingest"
