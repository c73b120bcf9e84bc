"""API keys and workspaces: bootstrap, hashed storage, shown once, scopes, revocation, no secret in logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.fixtures.gateway import BOOTSTRAP, World, new_workspace

pytestmark = pytest.mark.integration


async def test_workspace_bootstrap_needs_the_token(gw: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-Bootstrap-Token": "nope"}):
        r = await gw.post("/v1/workspaces", json={"name": "intruder"}, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
    ws = await new_workspace(gw)
    dup = await gw.post("/v1/workspaces", json={"name": "x" * 3}, headers={"X-Bootstrap-Token": BOOTSTRAP})
    assert dup.status_code in {201, 409}
    me = await gw.get("/v1/me", headers=ws.h())
    assert me.json() == {"workspace_id": ws.id, "key_id": me.json()["key_id"], "scopes": ["admin"]}


async def test_keys_are_stored_hashed_and_shown_once(
    gw: httpx.AsyncClient, world: World, engine: Engine
) -> None:
    r = await gw.post("/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=world.ws.h())
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert key.startswith(f"bsk_{created['prefix']}_")
    secret = key.split("_", 2)[2]
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key_hash FROM api_keys WHERE id = :i"), {"i": created["id"]}
        ).scalar_one()
    assert secret not in stored and len(stored) == 64
    listed = (await gw.get("/v1/api-keys", headers=world.ws.h())).json()["keys"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine and mine["prefix"] == created["prefix"]
    # the X-API-Key header works as well as Bearer, and use is recorded
    assert (await gw.get("/v1/me", headers={"X-API-Key": key})).status_code == 200
    listed = (await gw.get("/v1/api-keys", headers=world.ws.h())).json()["keys"]
    assert next(k for k in listed if k["id"] == created["id"])["last_used_at"] is not None


async def test_revoked_key_is_refused(gw: httpx.AsyncClient, world: World) -> None:
    key = (
        await gw.post("/v1/api-keys", json={"name": "tmp", "scopes": ["write"]}, headers=world.ws.h())
    ).json()
    h = {"Authorization": f"Bearer {key['key']}"}
    assert (await gw.get("/v1/me", headers=h)).status_code == 200
    r = await gw.delete(f"/v1/api-keys/{key['id']}", headers=world.ws.h())
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = await gw.get("/v1/me", headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({}, "required"),
        ({"Authorization": "Bearer nonsense"}, "malformed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "required"),
        ({"Authorization": "Bearer bsk_000000000000_wrong"}, "not valid"),
    ],
)
async def test_missing_or_wrong_key(gw: httpx.AsyncClient, header: dict[str, str], reason: str) -> None:
    r = await gw.get("/v1/me", headers=header)
    assert r.status_code == 401
    assert reason in r.json()["detail"]


async def test_right_prefix_wrong_secret(gw: httpx.AsyncClient, world: World) -> None:
    prefix = world.ws.read.split("_")[1]
    r = await gw.get("/v1/me", headers={"Authorization": f"Bearer bsk_{prefix}_not-the-secret"})
    assert r.status_code == 401


async def test_scopes_nest_and_cannot_escalate(gw: httpx.AsyncClient, world: World) -> None:
    read, write = world.ws.h(world.ws.read), world.ws.h(world.ws.write)
    r = await gw.post("/v1/projects", json={"name": "p-scope"}, headers=read)
    assert r.status_code == 403 and r.json()["context"]["required_scope"] == "write"
    assert (await gw.get("/v1/api-keys", headers=write)).status_code == 403
    assert (
        await gw.post("/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=write)
    ).status_code == 403
    assert (await gw.get("/v1/runs", headers=read)).status_code == 200


async def test_no_secret_in_logs(
    gw: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    created = (
        await gw.post("/v1/api-keys", json={"name": "log", "scopes": ["read"]}, headers=world.ws.h())
    ).json()
    key = created["key"]
    await gw.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    await gw.get("/v1/me", headers={"Authorization": f"Bearer {key}x"})
    await gw.post("/v1/workspaces", json={"name": "z"}, headers={"X-Bootstrap-Token": "wrong-token-value"})
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    for secret in (key, key.split("_", 2)[2], world.ws.admin, BOOTSTRAP):
        assert secret not in logged
