"""Every route of the OpenAPI refuses: no key, a wrong key, a revoked key, a too-small scope, another
workspace's ids. Routes are enumerated from /openapi.json, so a new route is covered (or this fails)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway import World

pytestmark = pytest.mark.integration

PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("post", "/v1/workspaces")}
RANK = {"read": 1, "write": 2, "admin": 3}


async def operations(gw: httpx.AsyncClient) -> list[tuple[str, str, str]]:
    spec = (await gw.get("/openapi.json")).json()
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if (method, path) in PUBLIC:
                assert op.get("x-required-scope") in (None, "none")
                continue
            ops.append((method, path, op["x-required-scope"]))
    return ops


def concrete(path: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)


async def call(
    gw: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: Any = None
) -> httpx.Response:
    if method in {"post", "put", "patch"}:
        return await gw.request(method, url, json=body if body is not None else {}, headers=headers)
    return await gw.request(method, url, headers=headers)


async def test_every_route_needs_a_valid_key(gw: httpx.AsyncClient, world: World) -> None:
    revoked = (
        await gw.post("/v1/api-keys", json={"name": "rv", "scopes": ["admin"]}, headers=world.ws.h())
    ).json()
    assert (await gw.delete(f"/v1/api-keys/{revoked['id']}", headers=world.ws.h())).status_code == 200
    prefix = world.ws.admin.split("_")[1]
    refusals = {
        "no key": {},
        "malformed key": {"Authorization": "Bearer hello"},
        "wrong secret": {"Authorization": f"Bearer bsk_{prefix}_wrong-secret"},
        "unknown key": {"X-API-Key": "bsk_ffffffffffff_whatever"},
        "revoked key": {"Authorization": f"Bearer {revoked['key']}"},
    }
    ops = await operations(gw)
    assert len(ops) >= 40
    values = {"run_id": world.runs[0].id, "path": "x", "job_id": uuid.uuid4()}
    for method, path, _ in ops:
        url = concrete(path, values)
        for why, headers in refusals.items():
            r = await call(gw, method, url, headers)
            assert r.status_code == 401, (method, path, why, r.text)
            body = r.json()
            assert body["error"] == "unauthorized" and body["detail"], (method, path, why)


async def test_every_route_refuses_a_too_small_scope(gw: httpx.AsyncClient, world: World) -> None:
    keys = {"read": world.ws.read, "write": world.ws.write}
    values = {"run_id": world.runs[0].id, "path": "x", "job_id": uuid.uuid4()}
    checked = 0
    for method, path, scope in await operations(gw):
        for have, key in keys.items():
            if RANK[have] >= RANK[scope]:
                continue
            r = await call(gw, method, concrete(path, values), {"Authorization": f"Bearer {key}"})
            assert r.status_code == 403, (method, path, have, r.text)
            assert r.json()["context"]["required_scope"] == scope
            checked += 1
    assert checked >= 30


# Ids of another workspace per path parameter, and a valid body per operation, so that the only reason to
# refuse is the workspace. Forwarded routes are isolated by the service they reach (tests/.../test_forward).
def foreign_requests(
    world: World, other: dict[str, Any]
) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    own_run = world.runs[0].id
    return {
        ("delete", "/v1/api-keys/{key_id}"): ({"key_id": other["key_id"]}, None),
        ("get", "/v1/runs/{run_id}"): ({"run_id": other["run_id"]}, None),
        ("post", "/v1/runs/{run_id}/gallery"): ({"run_id": other["run_id"]}, {}),
        ("get", "/v1/runs/{run_id}/compare/{other_run_id}"): (
            {"run_id": own_run, "other_run_id": other["run_id"]},
            None,
        ),
        ("get", "/v1/runs/{run_id}/metrics/classes"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/runs/{run_id}/metrics/histogram?metric=recall"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/runs/{run_id}/metrics/confusion"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/runs/{run_id}/metrics/curves"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/runs/{run_id}/metrics/tide"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/runs/{run_id}/auto-slices"): ({"run_id": other["run_id"]}, None),
        ("get", "/v1/rows/{row_id}"): ({"row_id": other["row_id"]}, None),
        ("get", "/v1/projects/{project_id}/batches"): ({"project_id": other["project_id"]}, None),
        ("post", "/v1/projects/{project_id}/batches"): (
            {"project_id": other["project_id"]},
            {
                "name": "b",
                "idempotency_key": uuid.uuid4().hex,
                "selection": {"data_row_ids": [world.row_ids[0]]},
            },
        ),
        ("get", "/v1/batches/{batch_id}/export"): ({"batch_id": other["batch_id"]}, None),
        ("post", "/v1/batches/{batch_id}/labels"): ({"batch_id": other["batch_id"]}, []),
    }


async def test_other_workspaces_ids_are_not_found(
    gw: httpx.AsyncClient, world: World, other_world: World
) -> None:
    oh = other_world.ws.h()
    project = (await gw.post("/v1/projects", json={"name": f"iso-{uuid.uuid4().hex[:6]}"}, headers=oh)).json()
    batch = (
        await gw.post(
            f"/v1/projects/{project['id']}/batches",
            json={
                "name": "iso",
                "idempotency_key": uuid.uuid4().hex,
                "selection": {"data_row_ids": other_world.row_ids[:2]},
            },
            headers=oh,
        )
    ).json()["batch"]
    other_key = (await gw.get("/v1/api-keys", headers=oh)).json()["keys"][0]["id"]
    other = {
        "run_id": other_world.runs[0].id, "row_id": other_world.row_ids[0], "project_id": project["id"],
        "batch_id": batch["id"], "key_id": other_key,
    }  # fmt: skip
    table = foreign_requests(world, other)
    covered = {(m, p.split("?")[0]) for m, p in table}
    own_routes = {
        (m, p) for m, p, _ in await operations(gw)
        if "{" in p and "{path}" not in p and not p.startswith(("/v1/runs/{run_id}/predictions", "/v1/jobs"))
        and (m, p) not in {("patch", "/v1/runs/{run_id}"), ("put", "/v1/runs/{run_id}/rows"), ("post", "/v1/runs/{run_id}/infer")}
    }  # fmt: skip
    assert own_routes <= covered, f"add a foreign-id request for {sorted(own_routes - covered)}"
    for (method, path), (values, body) in table.items():
        r = await call(gw, method, concrete(path, values), world.ws.h(), body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "not_found"
    # ids inside bodies and filters are refused too, naming the field
    h = world.ws.h()
    r = await gw.post("/v1/catalog/query", json={"selection": {"slice_id": 10**9}}, headers=h)
    assert r.status_code == 404 and r.json()["context"]["field"] == "slice_id"
    r = await gw.post(
        f"/v1/runs/{world.runs[0].id}/gallery",
        json={
            "filter": {
                "all": [{"field": "compare", "value": {"other_run_id": other["run_id"], "status": "fixed"}}]
            }
        },
        headers=h,
    )
    assert r.status_code == 404 and r.json()["context"]["field"] == "compare"
    own_project = (await gw.post("/v1/projects", json={"name": uuid.uuid4().hex}, headers=h)).json()["id"]
    r = await gw.post(
        f"/v1/projects/{own_project}/batches",
        json={
            "name": "x",
            "idempotency_key": uuid.uuid4().hex,
            "selection": {"data_row_ids": other_world.row_ids[:3]},
        },
        headers=h,
    )
    assert r.status_code == 404 and r.json()["context"]["field"] == "data_row_ids"
    # a foreign run's rows never show in a gallery or catalog of this workspace
    cat = (await gw.post("/v1/catalog/query", json={"limit": 200}, headers=h)).json()["rows"]
    assert not {r["data_row_id"] for r in cat} & set(other_world.row_ids)
    runs = (await gw.get("/v1/runs", headers=h)).json()["runs"]
    assert {r["id"] for r in runs} == {r.id for r in world.runs}


async def test_unknown_route_is_a_json_404(gw: httpx.AsyncClient, world: World) -> None:
    r = await gw.get("/v1/nope", headers=world.ws.h())
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_web_ui_is_served_at_root_and_api_errors_stay_json(db_url: str, tmp_path: Any) -> None:
    from services.gateway.main import create_app
    from tests.fixtures.gateway import gateway_settings

    (tmp_path / "index.html").write_text("<html>blindspot</html>")
    settings = gateway_settings(db_url)
    settings.gateway.web_dir = tmp_path
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://g") as c,
    ):
        r = await c.get("/")
        assert r.status_code == 200 and "blindspot" in r.text
        assert (await c.get("/openapi.json")).json()["info"]["title"] == "Blindspot API"
        r = await c.get("/v1/unknown")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert (await c.get("/healthz")).json() == {"status": "ok"}
