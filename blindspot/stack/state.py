"""What the local stack started, kept in ``<stack_dir>/state.json`` so another command can stop it.

Only processes recorded here are ever stopped: a server the stack found already running is used, never
recorded, never stopped.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Started:
    """One process the stack started: a dependency server or the honcho supervisor."""

    name: str
    pid: int
    port: int | None = None
    data_dir: str | None = None
    log: str | None = None
    # "pg_ctl" = stop through pg_ctl on data_dir; "group" = SIGTERM the process group; "pid" = SIGTERM pid.
    stop: str = "pid"
    started_at: float = field(default_factory=time.time)


class StackState:
    def __init__(self, stack_dir: Path) -> None:
        self.dir = stack_dir
        self.path = stack_dir / "state.json"

    @property
    def logs(self) -> Path:
        path = self.dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load(self) -> dict[str, Started]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text() or "{}")
        return {name: Started(**entry) for name, entry in raw.items()}

    def save(self, entries: dict[str, Started]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in entries.items()}, indent=2))
        tmp.replace(self.path)

    def record(self, entry: Started) -> None:
        entries = self.load()
        entries[entry.name] = entry
        self.save(entries)

    def forget(self, name: str) -> None:
        entries = self.load()
        if entries.pop(name, None) is not None:
            self.save(entries)

    def get(self, name: str) -> Started | None:
        entry = self.load().get(name)
        if entry is not None and not pid_alive(entry.pid):
            self.forget(name)
            return None
        return entry


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def terminate(pid: int, *, group: bool = False, timeout_s: float = 15.0) -> bool:
    """SIGTERM ``pid`` (or its process group), then SIGKILL after ``timeout_s``. True when it is gone."""

    def send(sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    if not pid_alive(pid):
        return True
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    send(signal.SIGKILL)
    time.sleep(0.2)
    return not pid_alive(pid)
