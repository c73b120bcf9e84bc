"""blindspot/stack: what the stack records, address parsing, and the fail-fast errors it raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blindspot.stack.deps import StackError, ensure_postgres, ensure_redis
from blindspot.stack.probe import Endpoint, host_port_endpoint, postgres_endpoint, redis_endpoint
from blindspot.stack.state import StackState, Started, pid_alive, terminate


def test_state_records_and_forgets(tmp_path: Path) -> None:
    state = StackState(tmp_path / "stack")
    assert state.load() == {}
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.record(Started("redis-1234", sleeper.pid, port=1234))
        again = StackState(tmp_path / "stack").get("redis-1234")
        assert again is not None and again.pid == sleeper.pid and again.port == 1234
        assert terminate(sleeper.pid, timeout_s=5)
        sleeper.wait(5)
        assert not pid_alive(sleeper.pid)
        # A dead process is dropped from the state on read.
        assert state.get("redis-1234") is None
        assert "redis-1234" not in state.load()
    finally:
        sleeper.kill()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8333", Endpoint("127.0.0.1", 8333)),
        ("minio:9000", Endpoint("minio", 9000)),
        ("http://triton:8001", Endpoint("triton", 8001)),
        ("s3.amazonaws.com", Endpoint("s3.amazonaws.com", 443)),
    ],
)
def test_host_port(value: str, expected: Endpoint) -> None:
    assert host_port_endpoint(value, 443) == expected


def test_url_endpoints() -> None:
    assert postgres_endpoint("postgresql+psycopg://u:p@db.internal:6543/x") == Endpoint("db.internal", 6543)
    assert postgres_endpoint("postgresql+psycopg://u@localhost/x") == Endpoint("localhost", 5432)
    assert redis_endpoint("redis://127.0.0.1:6390/11") == Endpoint("127.0.0.1", 6390)
    assert Endpoint("localhost", 1).local and not Endpoint("redis.prod", 1).local


def test_remote_servers_are_never_started_and_the_setting_is_named(tmp_path: Path) -> None:
    state = StackState(tmp_path)
    # 192.0.2.0/24 is TEST-NET-1: never routable, and not local, so the stack must refuse to start it.
    with pytest.raises(StackError) as info:
        ensure_redis("redis://192.0.2.1:6379/0", "BLINDSPOT_REDIS__URL", state, autostart=True)
    assert info.value.setting == "BLINDSPOT_REDIS__URL"
    assert "not a local address" in str(info.value)
    assert state.load() == {}


def test_no_autostart_names_the_setting(tmp_path: Path) -> None:
    state = StackState(tmp_path)
    with pytest.raises(StackError, match=r"^BLINDSPOT_DATABASE__URL: .*auto-start is off"):
        ensure_postgres(
            "postgresql+psycopg://postgres@127.0.0.1:1/x", "BLINDSPOT_DATABASE__URL", state, autostart=False
        )
    assert state.load() == {}


def test_a_crashed_procfile_process_is_named_with_its_last_lines(tmp_path: Path) -> None:
    from blindspot.stack.runner import crashed_processes

    log = tmp_path / "honcho.log"
    log.write_text(
        "19:04:09 system              | worker_ingest.1 started (pid=1)\n"
        "19:04:09 worker_ingest.1     | Traceback (most recent call last):\n"
        "19:04:09 worker_ingest.1     | ModuleNotFoundError: No module named 'services.ingest.worker'\n"
        "19:04:09 gateway.1           | INFO:     Started server process\n"
        "19:04:10 system              | worker_ingest.1 stopped (rc=2)\n"
        "19:04:10 system              | gateway.1 stopped (rc=-15)\n"
    )
    crashed = crashed_processes(log)
    assert list(crashed) == ["worker_ingest"], "SIGTERMed processes are not crashes"
    assert crashed["worker_ingest"][-1].startswith("ModuleNotFoundError")
    assert crashed_processes(tmp_path / "missing.log") == {}
