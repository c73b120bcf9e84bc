"""A real Celery worker through the real Redis: results, and redelivery of an unacked task after the worker
is killed (acks_late + reject_on_worker_lost + a short visibility timeout). Redis DB 15 is this test's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_URL = os.environ.get("BLINDSPOT_TEST_FOUNDATION_REDIS_URL", "redis://127.0.0.1:6379/15")
ENV = {
    "BLINDSPOT_REDIS__URL": REDIS_URL,
    "BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S": "10",
    "BLINDSPOT_CELERY__TASK_TIME_LIMIT_S": "8",
    "BLINDSPOT_CELERY__UNACKED_RESTORE_INTERVAL_S": "1",
}


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _worker(log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "tests.integration.foundation.celery_app:app",
                "worker",
                "-Q",
                "metrics",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)


def _app():  # type: ignore[no-untyped-def]
    # Imported after the env is set: the module builds its app from Settings().
    import importlib

    import tests.integration.foundation.celery_app as module

    return importlib.reload(module)


def _wait(predicate, timeout_s: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


def test_a_task_runs_through_redis_and_returns_its_result(broker: redis.Redis, tmp_path: Path) -> None:
    from shared.celery import send
    from shared.contracts.tasks import AggregateRunPayload, TaskName

    module = _app()
    worker = _worker(tmp_path / "worker.log")
    try:
        result = send(
            module.app,
            TaskName.metrics_aggregate_run,
            AggregateRunPayload(model_run_id=21),
            ignore_result=False,
        )
        assert result.get(timeout=60) == {"model_run_id": 21, "attempt": 1}
        assert broker.lrange("done", 0, -1) == [b"21"]
    finally:
        _kill(worker)


def test_an_unacked_task_is_redelivered_after_the_worker_dies(broker: redis.Redis, tmp_path: Path) -> None:
    from shared.celery import send
    from shared.contracts.tasks import AggregateRunPayload, TaskName

    module = _app()
    log = tmp_path / "worker.log"
    first = _worker(log)
    try:
        result = send(
            module.app,
            TaskName.metrics_aggregate_run,
            AggregateRunPayload(model_run_id=-7),
            ignore_result=False,
        )
        _wait(lambda: broker.get("running:-7") is not None, 60, "the first attempt to start", log)
        _kill(first)  # SIGKILL mid-task: the message was never acked
        assert broker.lrange("done", 0, -1) == []
        # Still in the unacked set, waiting for the visibility timeout.
        assert broker.hlen("unacked") == 1
    finally:
        _kill(first)
    t0 = time.monotonic()
    second = _worker(log)
    try:
        assert result.get(timeout=60) == {"model_run_id": -7, "attempt": 2}
        waited = time.monotonic() - t0
        assert broker.lrange("done", 0, -1) == [b"-7"], "ran to completion exactly once"
        assert waited < 40, f"redelivery took {waited:.0f}s"
        # acks_late: the ack follows the stored result by a moment.
        _wait(lambda: broker.hlen("unacked") == 0, 10, "the redelivered task to be acked", log)
    finally:
        _kill(second)
