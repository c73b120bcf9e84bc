"""No secret appears in the logs (issue 10, item 5).

The ingest app (uvicorn, real HTTP) and the gateway (forwarding to it) run with JSON logging
(shared.logging.configure_logging, DEBUG level so every library's records are kept) into a captured
stderr. Requests carry real API keys, the internal token, the bootstrap token and made-up keys; some
succeed, many fail (401s, 404s, 413s, 422s, a decompression bomb, broken JSON). Then none of the secret
values (API keys, settings.secret_key, internal token, bootstrap token, S3 secret key) may appear
anywhere in the captured text, while the logs did record the failures (the check has teeth).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from services.gateway.main import create_app as create_gateway
from shared.logging import get_logger
from shared.settings import S3Settings, ServiceUrls, get_settings
from tests.fixtures.gateway import BOOTSTRAP, gateway_settings
from tests.integration.reliability.payloads import png_bomb
from tests.integration.reliability.servers import ingest_settings, serve_ingest

pytestmark = pytest.mark.integration


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """stderr of the test (configure_logging binds the current sys.stderr when the apps start)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield capsys
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_no_secret_in_logs(
    captured: pytest.CaptureFixture[str], db_url: str, s3_settings: S3Settings, engine: Engine
) -> None:
    settings = get_settings()
    fake_key = "bsk_fakefakefake_0123456789abcdefghijklmnop"
    ingest_cfg = ingest_settings(db_url, s3_settings).model_copy(update={"log_level": "DEBUG"})
    with serve_ingest(ingest_cfg) as ingest_url:
        gw_cfg = gateway_settings(db_url).model_copy(
            update={"log_level": "DEBUG", "services": ServiceUrls(ingest=ingest_url)}
        )
        app = create_gateway(gw_cfg)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=60) as gw,
        ):
            r = await gw.post(
                "/v1/workspaces", json={"name": "secrets-ws"}, headers={"X-Bootstrap-Token": BOOTSTRAP}
            )
            if r.status_code == 409:
                r = await gw.post(
                    "/v1/workspaces",
                    json={"name": f"secrets-{id(r)}"},
                    headers={"X-Bootstrap-Token": BOOTSTRAP},
                )
            assert r.status_code == 201, r.text
            key = r.json()["api_key"]["key"]
            ok = {"Authorization": f"Bearer {key}"}
            hostile = {
                "Authorization": f"Bearer {fake_key}",
                "X-Internal-Token": settings.internal_token.get_secret_value(),
                "X-Api-Key": key,
                "Cookie": f"session={settings.secret_key.get_secret_value()}",
            }
            calls: list[tuple[str, str, dict[str, Any]]] = [
                (
                    "POST",
                    "/v1/workspaces",
                    {"json": {"name": "x"}, "headers": {"X-Bootstrap-Token": "wrong"}},
                ),
                ("GET", "/v1/runs", {"headers": hostile}),
                ("GET", "/v1/runs", {"headers": {"Authorization": f"Bearer {key}x"}}),
                ("GET", "/v1/me", {"headers": ok}),
                ("GET", "/v1/runs/999999999", {"headers": ok}),
                (
                    "POST",
                    "/v1/runs/1/gallery",
                    {"headers": ok, "json": {"filter": {"all": [{"field": key}]}}},
                ),
                ("POST", "/v1/datasets", {"headers": ok, "json": {"name": key}}),
                (
                    "POST",
                    "/v1/datasets",
                    {"headers": ok, "json": {"name": f"{key}-2", "description": "\x00"}},
                ),
                ("POST", "/v1/datasets", {"headers": ok, "content": b"{not json"}),
                ("GET", "/v1/jobs/not-a-uuid", {"headers": ok}),
            ]
            statuses = []
            for method, path, kw in calls:
                statuses.append((await gw.request(method, path, **kw)).status_code)
            ds = [d for d in (await gw.get("/v1/datasets", headers=ok)).json() if d["name"] == key]
            if ds:
                up = await gw.post(
                    f"/v1/datasets/{ds[0]['id']}/rows",
                    headers=ok,
                    files=[("files", ("bomb.png", png_bomb(), "image/png"))],
                    data={"global_keys": ["bomb.png"]},
                )
                statuses.append(up.status_code)
        # the ingest service directly: wrong and right internal tokens, and errors behind them
        internal = {
            "X-Internal-Token": settings.internal_token.get_secret_value(),
            "X-Blindspot-Workspace": "1",
        }
        async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as c:
            statuses.append(
                (await c.get("/v1/datasets", headers={**internal, "X-Internal-Token": fake_key})).status_code
            )
            statuses.append((await c.get("/v1/datasets/99999999999999999999", headers=internal)).status_code)
            statuses.append(
                (
                    await c.post("/v1/classes", json={"classes": [{"name": "a\x00"}]}, headers=internal)
                ).status_code
            )
    # a log call naming secrets by key is redacted too
    get_logger("tests.secrets").warning(
        "login failed",
        authorization=f"Bearer {key}",
        internal_token=settings.internal_token.get_secret_value(),
    )
    text_out = captured.readouterr().err
    assert statuses and all(s < 500 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses)
    lines = [ln for ln in text_out.splitlines() if ln.strip()]
    assert len(lines) >= 5, text_out[-2000:]
    parsed = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert parsed and any(
        p.get("event") == "login failed" for p in parsed
    )  # JSON logs, the test line included
    secrets = {
        "api key": key,
        "api key secret part": key.split("_", 2)[2],  # bsk_<prefix>_<secret>; the secret may hold "_" too
        "made-up api key": fake_key,
        "secret_key": settings.secret_key.get_secret_value(),
        "internal token": settings.internal_token.get_secret_value(),
        "bootstrap token": BOOTSTRAP,
        "S3 secret key": s3_settings.secret_key.get_secret_value(),
    }
    print(
        f"secrets-in-logs: {len(lines)} log lines, statuses {sorted(set(statuses))}, {len(secrets)} secrets checked"
    )
    leaked = {name: text_out.count(value) for name, value in secrets.items() if value and value in text_out}
    assert not leaked, f"secrets in the logs: {leaked}"
    with engine.connect() as conn:  # sanity: the work really reached the database
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() >= 1
