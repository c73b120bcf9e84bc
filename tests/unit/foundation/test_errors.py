"""shared/errors.py and the one JSON error shape of shared/http.py."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from shared import errors
from shared.http import health_router, install_error_handlers


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.BadRequest, 400, "bad_request"),
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.Forbidden, 403, "forbidden"),
        (errors.NotFound, 404, "not_found"),
        (errors.Conflict, 409, "conflict"),
        (errors.PayloadTooLarge, 413, "payload_too_large"),
        (errors.UnsupportedMedia, 415, "unsupported_media_type"),
        (errors.InvalidInput, 422, "invalid_input"),
        (errors.DependencyUnavailable, 503, "dependency_unavailable"),
    ],
)
def test_each_error_has_its_status_and_code(cls: type[errors.BlindspotError], status: int, code: str) -> None:
    exc = cls("what went wrong", context={"field": "x"})
    assert exc.status_code == status
    assert exc.to_dict() == {"error": code, "detail": "what went wrong", "context": {"field": "x"}}
    assert cls("no context").to_dict() == {"error": code, "detail": "no context"}


class Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/missing")
    def missing() -> None:
        raise errors.NotFound("dataset 7 does not exist", context={"dataset_id": 7})

    @app.get("/db-down")
    def db_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    @app.get("/redis-down")
    def redis_down() -> None:
        raise ConnectionError("redis is gone")

    @app.post("/body")
    def body(payload: Body) -> dict[str, int]:
        return {"n": payload.n}

    async def ok() -> None:
        return None

    async def broken() -> None:
        raise ConnectionRefusedError("nothing at 127.0.0.1:1")

    app.include_router(health_router({"ok": ok, "broken": broken}))
    return app


def test_handlers_give_one_shape_and_503_for_dependencies() -> None:
    client = TestClient(_app())
    r = client.get("/missing")
    assert r.status_code == 404
    assert r.json() == {
        "error": "not_found",
        "detail": "dataset 7 does not exist",
        "context": {"dataset_id": 7},
    }
    for path in ("/db-down", "/redis-down"):
        r = client.get(path)
        assert r.status_code == 503, path
        assert r.json()["error"] == "dependency_unavailable"
    r = client.post("/body", json={"n": "seven"})
    assert r.status_code == 422
    assert r.json()["error"] == "validation_error"
    assert r.json()["context"]["errors"][0]["field"] == "body.n"


def test_readyz_names_the_failing_check() -> None:
    client = TestClient(_app())
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["ok"]["ok"] is True
    assert body["checks"]["broken"]["ok"] is False
    assert "127.0.0.1:1" in body["checks"]["broken"]["error"]
