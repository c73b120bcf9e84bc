"""The metrics HTTP app: health, readiness against the real Postgres/Redis, run status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.metrics.main import create_app
from shared.settings import DatabaseSettings, Settings
from tests.fixtures.metrics import seed_run

pytestmark = pytest.mark.integration


def test_health_ready_and_run_status(db_url: str) -> None:
    run = seed_run(db_url, 5, seed=3)
    app = create_app(Settings(database=DatabaseSettings(url=db_url)))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"postgres", "redis"}
        status = client.get(f"/v1/internal/runs/{run.model_run_id}/status").json()
        assert status["rows"] == 5 and status["rows_with_metrics"] == 0 and status["aggregated_at"] is None
        missing = client.get("/v1/internal/runs/999999999/status")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_readiness_names_a_dead_dependency(db_url: str) -> None:
    app = create_app(
        Settings(database=DatabaseSettings(url="postgresql+psycopg://postgres@127.0.0.1:1/nope"))
    )
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"]["ok"] is False
