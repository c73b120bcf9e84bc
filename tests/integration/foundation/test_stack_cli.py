"""``blindspot stack``: deps against the real local servers, fail-fast naming the setting, and a stack of
its own (embedded Postgres, redis-server, SeaweedFS on spare ports) brought up, migrated and taken down.
The machine's shared servers are only ever read, never stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from blindspot.stack.probe import postgres_error, redis_error
from blindspot.stack.runner import SERVICES
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

CLI = [str(Path(sys.executable).parent / "blindspot"), "stack"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BLINDSPOT_")}
    return subprocess.run(
        [*CLI, *args], env={**base, **env}, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def test_deps_uses_the_running_servers_and_is_idempotent(tmp_path: Path) -> None:
    env = {"BLINDSPOT_STACK_DIR": str(tmp_path)}
    for _ in range(2):
        result = run("deps", env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line.strip()}
        assert lines["postgres"] == "up" and lines["redis"] == "up"
        for binary in ("weed", "docker-compose", "hadolint", "kubectl"):
            assert lines[binary] == "ok"
    assert not (tmp_path / "state.json").exists() or "postgres" not in (tmp_path / "state.json").read_text()


@pytest.mark.parametrize("command", ["deps", "up"])
def test_a_dead_database_fails_fast_naming_the_setting(tmp_path: Path, command: str) -> None:
    port = free_port()
    env = {
        "BLINDSPOT_STACK_DIR": str(tmp_path),
        "BLINDSPOT_DATABASE__URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/blindspot",
    }
    result = run(command, "--no-start", env=env, timeout=60)
    assert result.returncode == 1
    assert "BLINDSPOT_DATABASE__URL" in result.stderr and str(port) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / f"postgres-{port}").exists(), "nothing was started"


def test_autostart_off_by_setting_too(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "BLINDSPOT_STACK_DIR": str(tmp_path),
        "BLINDSPOT_STACK_AUTOSTART": "false",
        "BLINDSPOT_REDIS__URL": f"redis://127.0.0.1:{port}/0",
    }
    result = run("deps", env=env, timeout=60)
    assert result.returncode == 1
    assert "BLINDSPOT_REDIS__URL" in result.stderr


def test_prod_with_a_placeholder_secret_names_it(tmp_path: Path) -> None:
    env = {"BLINDSPOT_STACK_DIR": str(tmp_path), "BLINDSPOT_ENV": "prod", "BLINDSPOT_SECRET_KEY": "changeme"}
    result = run("up", env=env, timeout=60)
    assert result.returncode == 2
    assert "BLINDSPOT_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_up_brings_everything_up_and_down_stops_only_what_it_started(tmp_path: Path) -> None:
    pg, rd, s3 = free_port(), free_port(), free_port()
    service_ports = {name: free_port() for name in SERVICES}
    env = {
        **{
            f"BLINDSPOT_SERVICES__{name.upper()}": f"http://127.0.0.1:{port}"
            for name, port in service_ports.items()
        },
        "BLINDSPOT_STACK_DIR": str(tmp_path / "stack"),
        "BLINDSPOT_DATABASE__URL": f"postgresql+psycopg://postgres@127.0.0.1:{pg}/blindspot",
        "BLINDSPOT_REDIS__URL": f"redis://127.0.0.1:{rd}/0",
        "BLINDSPOT_S3__ENDPOINT": f"127.0.0.1:{s3}",
        "BLINDSPOT_S3__SECRET_KEY": "stack-test-secret-key",
        "BLINDSPOT_QDRANT__PATH": str(tmp_path / "qdrant"),
    }
    try:
        result = run("up", "--timeout", "240", env=env, timeout=400)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "migrated to head" in result.stdout
        assert "every /readyz is green" in result.stdout
        for name, port in service_ports.items():
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert ready.status_code == 200, (name, ready.text)
            assert all(check["ok"] for check in ready.json()["checks"].values())
        for name in ("postgres", "redis", "s3"):
            assert any(line.split()[:2] == [name, "started"] for line in result.stdout.splitlines()), name
        assert (tmp_path / "qdrant").is_dir()
        db_url = env["BLINDSPOT_DATABASE__URL"]
        import psycopg

        with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None

        # A second `up` reuses what runs (idempotent), and `status` reports it as the stack's own.
        again = run("up", env=env)
        assert again.returncode == 0, again.stderr
        assert " started " not in again.stdout
        status = run("status", env=env)
        rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines() if line.strip()}
        assert rows["postgres"] == rows["redis"] == rows["s3"] == "running"
        assert all(rows[name] == "ready" for name in SERVICES) and status.returncode == 0
    finally:
        down = run("down", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped") == 4, down.stdout  # honcho + the three servers
    for port in service_ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert postgres_error(env["BLINDSPOT_DATABASE__URL"]) is not None
    assert redis_error(env["BLINDSPOT_REDIS__URL"]) is not None
    # The machine's shared servers were never touched.
    assert postgres_error("postgresql+psycopg://postgres@127.0.0.1:5432/postgres") is None
    assert redis_error("redis://127.0.0.1:6379/0") is None
