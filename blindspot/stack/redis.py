"""A local ``redis-server`` on 127.0.0.1:<port> (Debian's package, installed with apt-get when missing)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from blindspot.stack.probe import Endpoint, tcp_error
from blindspot.stack.state import pid_alive, terminate


@dataclass(frozen=True)
class RedisProcess:
    port: int
    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None


def binary(*, install: bool = True) -> str:
    """Path of redis-server; installs Debian's ``redis-server`` package when missing and allowed."""
    found = shutil.which("redis-server")
    if found:
        return found
    if not install:
        raise FileNotFoundError("redis-server is not installed (apt-get install -y redis-server)")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "redis-server"], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", "redis-server"], env=env, capture_output=True, text=True
        )
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if not found:
        raise FileNotFoundError(f"could not install redis-server: {result.stderr.strip()[-500:]}")
    # Debian's package starts its own service on 6379 when an init system runs; the stack does not rely on it.
    return found


def start(
    data_dir: Path, port: int, *, timeout_s: float = 15.0, persist: bool = False, log: Path | None = None
) -> RedisProcess:
    """Start redis-server on 127.0.0.1:``port`` in its own session (it outlives the calling command)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or data_dir / "redis.log"
    args = [
        binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--save", "60 1" if persist else "",
        "--appendonly", "no",
    ]  # fmt: skip
    with log.open("ab") as out:
        popen = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=data_dir
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(
                f"redis-server exited on 127.0.0.1:{port}: {log.read_text(errors='replace')[-800:]}"
            )
        if tcp_error(Endpoint("127.0.0.1", port), 0.2) is None:
            return RedisProcess(port, popen.pid, log, popen)
        time.sleep(0.05)
    terminate(popen.pid)
    raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{port} within {timeout_s:.0f}s")


def stop(process: RedisProcess) -> None:
    if pid_alive(process.pid):
        terminate(process.pid)
    if process.popen is not None:
        process.popen.wait(5)
