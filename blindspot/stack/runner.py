"""``stack deps|up|down|status``: the orchestration behind the CLI (blindspot/cli/stack.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from blindspot.stack.deps import (
    TEST_DATABASE_ENV,
    DepStatus,
    StackError,
    check_binaries,
    ensure_postgres,
    ensure_redis,
    stop_started,
    test_database_url,
)
from blindspot.stack.probe import (
    Endpoint,
    host_port_endpoint,
    http_error,
    postgres_endpoint,
    postgres_error,
    redis_endpoint,
    redis_error,
    tcp_error,
)
from blindspot.stack.state import StackState, Started, pid_alive
from shared.settings import REPO_ROOT, Settings

SERVICES = ("gateway", "ingest", "search", "inference", "metrics")
PROCFILE = REPO_ROOT / "Procfile"
HONCHO = "honcho"


def _state(settings: Settings) -> StackState:
    state = StackState(Path(settings.stack_dir))
    state.dir.mkdir(parents=True, exist_ok=True)
    return state


def ensure_test_deps(settings: Settings, *, autostart: bool) -> list[DepStatus]:
    """Postgres and Redis answering, the pip-installed binaries present. Quick and idempotent."""
    state = _state(settings)
    statuses = [ensure_postgres(settings.database.url, "BLINDSPOT_DATABASE__URL", state, autostart=autostart)]
    test_url = test_database_url(settings.database.url)
    if test_url:
        statuses.append(ensure_postgres(test_url, TEST_DATABASE_ENV, state, autostart=autostart))
    statuses.append(ensure_redis(settings.redis.url, "BLINDSPOT_REDIS__URL", state, autostart=autostart))
    for url, setting in ((settings.celery.broker_url, "BLINDSPOT_CELERY__BROKER_URL"),):
        if url and url.startswith("redis") and redis_endpoint(url) != redis_endpoint(settings.redis.url):
            statuses.append(ensure_redis(url, setting, state, autostart=autostart))
    statuses.extend(check_binaries(triton=settings.triton.enabled))
    return statuses


# --- S3, Qdrant, Triton --------------------------------------------------------------------------------


def ensure_s3(settings: Settings, state: StackState, *, autostart: bool) -> DepStatus:
    from minio import Minio
    from minio.error import MinioException

    s3 = settings.s3
    setting = "BLINDSPOT_S3__ENDPOINT"
    endpoint = host_port_endpoint(s3.endpoint, 443 if s3.secure else 80)
    secret = s3.secret_key.get_secret_value()
    how = "up"
    if tcp_error(endpoint) is not None:
        if not (autostart and endpoint.local):
            why = "auto-start is off" if endpoint.local else "it is not a local address"
            raise StackError(
                setting, f"no S3 server answers at {endpoint} ({why}). Fix the setting or start one."
            )
        from blindspot.stack import seaweed

        data_dir = state.dir / f"seaweedfs-{endpoint.port}"
        try:
            handle = seaweed.start(data_dir, endpoint.port, s3.access_key, secret, buckets=(s3.bucket,))
        except (seaweed.SeaweedError, OSError) as exc:
            raise StackError(setting, f"could not start SeaweedFS on {endpoint}: {exc}") from exc
        state.record(
            Started(
                f"seaweedfs-{endpoint.port}",
                handle.pid,
                port=endpoint.port,
                data_dir=str(data_dir),
                log=str(handle.log),
                stop="group",
            )
        )
        how = "started"
    elif state.get(f"seaweedfs-{endpoint.port}"):
        how = "running"
    client = Minio(
        s3.endpoint, access_key=s3.access_key, secret_key=secret, secure=s3.secure, region=s3.region
    )
    try:
        if not client.bucket_exists(s3.bucket):
            client.make_bucket(s3.bucket)
    except (MinioException, OSError, ValueError) as exc:
        raise StackError(
            "BLINDSPOT_S3__ACCESS_KEY" if "Signature" in str(exc) or "AccessDenied" in str(exc) else setting,
            f"the S3 server at {endpoint} refused the bucket {s3.bucket!r}: {exc}",
        ) from exc
    return DepStatus("s3", setting, str(endpoint), how, f"bucket {s3.bucket}")


def ensure_qdrant(settings: Settings) -> DepStatus:
    q = settings.qdrant
    if q.url:
        error = http_error(q.url.rstrip("/") + "/readyz")
        if error is not None:
            raise StackError("BLINDSPOT_QDRANT__URL", f"Qdrant at {q.url} is not ready: {error}")
        return DepStatus("qdrant", "BLINDSPOT_QDRANT__URL", q.url, "up")
    Path(q.path).mkdir(parents=True, exist_ok=True)
    return DepStatus(
        "qdrant", "BLINDSPOT_QDRANT__PATH", str(q.path), "ok", f"embedded ({q.embedded_backend})"
    )


def ensure_triton(settings: Settings, state: StackState, *, autostart: bool) -> DepStatus:
    t = settings.triton
    if not t.enabled:
        return DepStatus("triton", "BLINDSPOT_TRITON__ENABLED", "-", "off", "ONNX Runtime in-process")
    endpoint = host_port_endpoint(t.url, 8001)
    if tcp_error(endpoint) is None:
        return DepStatus(
            "triton", "BLINDSPOT_TRITON__URL", str(endpoint), "running" if state.get("triton") else "up"
        )
    if not (autostart and endpoint.local):
        raise StackError("BLINDSPOT_TRITON__URL", f"no Triton answers at {endpoint}")
    try:
        from blindspot.stack import triton  # type: ignore[attr-defined]
    except ImportError as exc:
        raise StackError(
            "BLINDSPOT_TRITON__ENABLED", "no Triton launcher (blindspot/stack/triton.py)"
        ) from exc
    try:
        handle = triton.start(settings, state.dir / "triton")
    except Exception as exc:
        raise StackError("BLINDSPOT_TRITON__URL", f"could not start tritonserver: {exc}") from exc
    state.record(
        Started(
            "triton", int(handle.pid), port=endpoint.port, log=str(getattr(handle, "log", "")), stop="group"
        )
    )
    return DepStatus(
        "triton", "BLINDSPOT_TRITON__URL", str(endpoint), "started", "tritonserver (nvidia-pytriton)"
    )


def migrate(settings: Settings) -> None:
    from shared.db import migrate as db_migrate

    try:
        db_migrate.ensure_database(settings.database.url)
        db_migrate.upgrade(settings.database.url)
    except Exception as exc:
        raise StackError(
            "BLINDSPOT_DATABASE__URL", f"migrations failed: {type(exc).__name__}: {exc}"
        ) from exc


# --- services --------------------------------------------------------------------------------------------


def service_env(settings: Settings) -> dict[str, str]:
    """The environment of the honcho processes: ours, plus each service's port from its URL setting."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    for name in SERVICES:
        env[f"BLINDSPOT_{name.upper()}_PORT"] = str(
            host_port_endpoint(getattr(settings.services, name), 80).port
        )
    return env


def start_services(settings: Settings, state: StackState) -> Started:
    existing = state.get("honcho")
    if existing is not None:
        return existing
    for name in SERVICES:
        endpoint = host_port_endpoint(getattr(settings.services, name), 80)
        if tcp_error(endpoint, 0.3) is None:
            raise StackError(
                f"BLINDSPOT_SERVICES__{name.upper()}",
                f"port {endpoint} is already taken by a process the stack did not start",
            )
    log = state.logs / "honcho.log"
    if log.exists():  # keep the previous run's log beside, so crash detection reads only this run
        log.replace(log.with_suffix(".log.prev"))
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [str(Path(sys.executable).parent / HONCHO), "-f", str(PROCFILE), "-d", str(REPO_ROOT), "start"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=service_env(settings),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    entry = Started("honcho", popen.pid, log=str(log), stop="group")
    state.record(entry)
    return entry


def wait_ready(
    settings: Settings, supervisor: Started | None, timeout_s: float, echo: Callable[[str], None]
) -> dict[str, str | None]:
    """Poll every service's /readyz until all are green or ``timeout_s`` passes; the last error of each."""
    pending: dict[str, str | None] = {name: "not polled yet" for name in SERVICES}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            error = http_error(getattr(settings.services, name).rstrip("/") + "/readyz")
            if error is None:
                echo(f"  {name:<10} ready")
                pending.pop(name)
            else:
                pending[name] = error
        if supervisor is not None and not pid_alive(supervisor.pid):
            break
        if pending:
            time.sleep(0.5)
    return pending


def crashed_processes(log: Path, tail: int = 6) -> dict[str, list[str]]:
    """Procfile processes that stopped on their own (rc other than SIGTERM's), with their last log lines."""
    if not log.is_file():
        return {}
    text = log.read_text(errors="replace").splitlines()
    crashed: list[str] = []
    for line in text:
        match = re.search(r"\| (\S+)\.\d+ stopped \(rc=(-?\d+)\)", line)
        if match and match.group(2) not in {"-15", "0"}:
            crashed.append(match.group(1))
    found: dict[str, list[str]] = {}
    for name in crashed:
        own = [
            line.split("| ", 1)[-1] for line in text if re.match(rf"^\S+ {re.escape(name)}\.\d+\s+\|", line)
        ]
        found[name] = own[-tail:]
    return found


def stack_up(
    settings: Settings,
    *,
    autostart: bool,
    timeout_s: float,
    with_services: bool,
    echo: Callable[[str], None],
) -> None:
    state = _state(settings)
    statuses = [
        ensure_postgres(settings.database.url, "BLINDSPOT_DATABASE__URL", state, autostart=autostart),
        ensure_redis(settings.redis.url, "BLINDSPOT_REDIS__URL", state, autostart=autostart),
        ensure_s3(settings, state, autostart=autostart),
        ensure_qdrant(settings),
        ensure_triton(settings, state, autostart=autostart),
    ]
    for s in statuses:
        echo(f"  {s.name:<10} {s.state:<8} {s.target}  {s.detail}".rstrip())
    migrate(settings)
    echo("  database   migrated to head")
    if not with_services:
        return
    supervisor = start_services(settings, state)
    echo(f"  services   honcho pid {supervisor.pid}, logs in {supervisor.log}; waiting for /readyz")
    pending = wait_ready(settings, supervisor, timeout_s, echo)
    if pending:
        died = not pid_alive(supervisor.pid)
        lines = [f"{name}: {error}" for name, error in pending.items()]
        hint = f"not ready after {timeout_s:.0f}s"
        if died:
            crashed = crashed_processes(Path(supervisor.log or ""))
            hint = "honcho exited because a process crashed"
            for process, tail in crashed.items():
                lines.append(f"{process} crashed; its last lines:\n      " + "\n      ".join(tail))
            state.forget("honcho")
        raise StackError(
            "services",
            f"{hint}:\n  "
            + "\n  ".join(lines)
            + "\n  see `blindspot stack logs honcho` (or `stack logs <service>`)",
        )
    echo("stack is up: every /readyz is green")


def stack_down(settings: Settings) -> list[str]:
    state = _state(settings)
    entries = state.load()
    lines: list[str] = []
    # Services first (they hold connections), then the servers.
    order = sorted(entries.values(), key=lambda e: (e.name != "honcho", e.name))
    for entry in order:
        if pid_alive(entry.pid):
            stop_started(entry)
            lines.append(f"stopped {entry.name} (pid {entry.pid})")
        else:
            lines.append(f"{entry.name} was not running")
        state.forget(entry.name)
    return lines or ["nothing to stop"]


def stack_status(settings: Settings) -> list[tuple[str, str, str, str]]:
    state = _state(settings)
    rows: list[tuple[str, str, str, str]] = []

    def mine(name: str) -> bool:
        return state.get(name) is not None

    pg = postgres_endpoint(settings.database.url)
    error = postgres_error(settings.database.url)
    rows.append(
        (
            "postgres",
            "down" if error else ("running" if mine(f"postgres-{pg.port}") else "up"),
            str(pg),
            error or "",
        )
    )
    rd = redis_endpoint(settings.redis.url)
    error = redis_error(settings.redis.url)
    rows.append(
        (
            "redis",
            "down" if error else ("running" if mine(f"redis-{rd.port}") else "up"),
            str(rd),
            error or "",
        )
    )
    s3 = host_port_endpoint(settings.s3.endpoint, 80)
    error = tcp_error(s3)
    rows.append(
        (
            "s3",
            "down" if error else ("running" if mine(f"seaweedfs-{s3.port}") else "up"),
            str(s3),
            error or "",
        )
    )
    if settings.qdrant.url:
        error = http_error(settings.qdrant.url.rstrip("/") + "/readyz")
        rows.append(("qdrant", "down" if error else "up", settings.qdrant.url, error or ""))
    else:
        exists = Path(settings.qdrant.path).is_dir()
        rows.append(("qdrant", "ok" if exists else "missing", str(settings.qdrant.path), "embedded"))
    if settings.triton.enabled:
        tr: Endpoint = host_port_endpoint(settings.triton.url, 8001)
        error = tcp_error(tr)
        rows.append(("triton", "down" if error else "up", str(tr), error or ""))
    else:
        rows.append(("triton", "off", "-", "ONNX Runtime in-process"))
    honcho = state.get("honcho")
    for name in SERVICES:
        url = getattr(settings.services, name)
        error = http_error(url.rstrip("/") + "/readyz")
        state_name = "ready" if error is None else ("starting" if honcho else "down")
        rows.append((name, state_name, url, error or ""))
    return rows
