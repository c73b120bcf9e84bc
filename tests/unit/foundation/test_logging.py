"""shared/logging.py: JSON lines on stderr with secrets and API keys redacted."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.logging import configure_logging, get_logger


@pytest.fixture
def lines():  # type: ignore[no-untyped-def]
    configure_logging("DEBUG")
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    logging.getLogger().handlers.clear()


def test_secret_fields_are_redacted(lines) -> None:  # type: ignore[no-untyped-def]
    log = get_logger("test.redaction")
    log.info(
        "connecting",
        password="hunter2",
        s3_secret_key="abc",
        authorization="Bearer xyz",
        x_api_key="bsk_live_0123456789abcdef",
        host="db",
    )
    (event,) = [e for e in lines() if e.get("event") == "connecting"]
    assert event["password"] == event["s3_secret_key"] == event["authorization"] == "***"
    assert event["x_api_key"] == "***"
    assert event["host"] == "db"
    assert event["level"] == "info" and event["logger"] == "test.redaction" and "timestamp" in event


def test_api_keys_inside_messages_are_masked(lines) -> None:  # type: ignore[no-untyped-def]
    get_logger("test").warning("bad key", detail="key bsk_abcdefgh12345678 was revoked")
    (event,) = [e for e in lines() if e.get("event") == "bad key"]
    assert event["detail"] == "key bsk_*** was revoked"
    assert "abcdefgh12345678" not in json.dumps(event)


def test_stdlib_loggers_go_through_the_same_pipeline(lines) -> None:  # type: ignore[no-untyped-def]
    logging.getLogger("celery.worker").error("token=%s", "bsk_secretsecret99")
    events = [e for e in lines() if e.get("logger") == "celery.worker"]
    assert events and events[0]["level"] == "error"


def test_exceptions_are_rendered_as_a_traceback_field(lines) -> None:  # type: ignore[no-untyped-def]
    try:
        raise ValueError("the cause")
    except ValueError:
        logging.getLogger("worker").exception("task failed")
    (event,) = [e for e in lines() if e.get("event") == "task failed"]
    assert "ValueError: the cause" in event["exception"] and "Traceback" in event["exception"]
