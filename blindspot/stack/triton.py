"""Launch the local tritonserver (the binary shipped in the nvidia-pytriton wheel) on the CPU.

That build has only the Python backend, so the local model repository serves each ONNX file through
ONNX Runtime inside Triton's Python stub (``deploy/triton/local/<model>/``); production uses the
ONNX Runtime / TensorRT configs under ``deploy/triton/models/``. Same model names, same tensors.

What ``start`` does:

1. finds ``tritonserver`` (``BLINDSPOT_TRITONSERVER`` or ``pytriton/tritonserver/bin``);
2. makes sure ``settings.triton.python_env`` exists: a venv made from Debian's ``/usr/bin/python3.11``
   (the Python the stub links against) holding numpy 1.x + onnxruntime (installed with uv, else pip);
3. builds a backend folder with the 3.11 stub and a model repository under ``work_dir``: the detector
   template with ``settings.models.detector_onnx`` linked as ``1/model.onnx`` and named
   ``settings.triton.detector_model`` (bring your own ONNX), plus every other ``deploy/triton/local``
   model with its ONNX from ``deploy/triton/models/<name>/1/``;
4. starts the server in its own process group and waits until ``/v2/health/ready`` answers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shared.settings import REPO_ROOT, Settings

LOCAL_TEMPLATES = REPO_ROOT / "deploy" / "triton" / "local"
PROD_MODELS = REPO_ROOT / "deploy" / "triton" / "models"
DETECTOR_TEMPLATE = "yolov8_demo"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
STUB_PYTHON = "3.11"
# The Python backend stub in nvidia-pytriton is built against numpy 1.x: with numpy 2 its output
# tensors come back empty.
STUB_PACKAGES = ("numpy>=1.26,<2", "onnxruntime")


class TritonStartError(RuntimeError):
    """tritonserver could not be found, prepared or started; the message says why."""


@dataclass
class TritonHandle:
    pid: int
    log: Path
    http_port: int
    grpc_port: int
    repository: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def find_tritonserver() -> Path | None:
    """The tritonserver binary: ``$BLINDSPOT_TRITONSERVER``, nvidia-pytriton's, or one on PATH."""
    explicit = os.environ.get("BLINDSPOT_TRITONSERVER")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.submodule_search_locations:
        candidate = (
            Path(next(iter(spec.submodule_search_locations))) / "tritonserver" / "bin" / "tritonserver"
        )
        if candidate.is_file():
            return candidate
    found = shutil.which("tritonserver")
    return Path(found) if found else None


def _uv() -> str | None:
    for candidate in (Path(sys.executable).parent / "uv", Path.home() / ".local" / "bin" / "uv"):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("uv")


def _site_packages(env: Path) -> Path:
    return env / "lib" / f"python{STUB_PYTHON}" / "site-packages"


def ensure_python_env(env: Path) -> Path:
    """Create the stub's venv if needed; returns its site-packages (numpy + onnxruntime importable)."""
    python = env / "bin" / "python"
    if not python.exists():
        if not SYSTEM_PYTHON.exists():
            raise TritonStartError(
                f"{SYSTEM_PYTHON} is missing: the Python backend stub links against Debian's libpython3.11"
                " (apt-get install python3.11 libpython3.11)"
            )
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(env)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import numpy, onnxruntime; assert int(numpy.__version__.split('.')[0]) < 2"],
        capture_output=True,
    )
    if probe.returncode != 0:
        uv = _uv()
        if uv:
            cmd = [uv, "pip", "install", "--quiet", "--python", str(python), *STUB_PACKAGES]
        else:
            subprocess.run([str(python), "-m", "ensurepip"], check=False, capture_output=True)
            cmd = [str(python), "-m", "pip", "install", "--quiet", *STUB_PACKAGES]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise TritonStartError(f"could not install numpy + onnxruntime into {env}: {done.stderr[-500:]}")
    return _site_packages(env)


def _backend_dir(server: Path, work_dir: Path) -> Path:
    """``work_dir/backends/python`` with the backend library, its utils and the 3.11 stub."""
    root = server.parent.parent  # .../tritonserver
    src = root / "backends" / "python"
    stub = root / "python_backend_stubs" / STUB_PYTHON / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonStartError(f"no Python {STUB_PYTHON} backend stub at {stub}")
    dest = work_dir / "backends" / "python"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for item in src.iterdir():
        (dest / item.name).symlink_to(item)
    shutil.copy2(stub, dest / "triton_python_backend_stub")
    return work_dir / "backends"


def _copy_template(template: Path, dest: Path, name: str) -> None:
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
    config = dest / "config.pbtxt"
    text = re.sub(r'^name:\s*"[^"]*"', f'name: "{name}"', config.read_text(), count=1, flags=re.M)
    config.write_text(text)


def build_repository(settings: Settings, dest: Path) -> Path:
    """The local model repository (copied configs, linked ONNX files); rebuilt on every start."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    detector_onnx = Path(settings.models.detector_onnx)
    if not detector_onnx.is_file():
        raise TritonStartError(
            f"BLINDSPOT_MODELS__DETECTOR_ONNX: no ONNX file at {detector_onnx} (export one with"
            " tools/train_detector.py or point the setting at your YOLOv8 export)"
        )
    name = settings.triton.detector_model
    _copy_template(LOCAL_TEMPLATES / DETECTOR_TEMPLATE, dest / name, name)
    (dest / name / "1" / "model.onnx").symlink_to(detector_onnx.resolve())
    for template in sorted(p for p in LOCAL_TEMPLATES.iterdir() if p.is_dir()):
        if template.name == DETECTOR_TEMPLATE or (dest / template.name).exists():
            continue
        _copy_template(template, dest / template.name, template.name)
        for version in (PROD_MODELS / template.name).glob("[0-9]*"):
            for onnx in version.glob("*.onnx"):
                target = dest / template.name / version.name / onnx.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(onnx.resolve())
    return dest


def _ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    settings: Settings,
    work_dir: Path,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    timeout_s: float = 120.0,
) -> TritonHandle:
    """Start tritonserver on the local repository and wait until it is ready (raises TritonStartError)."""
    server = find_tritonserver()
    if server is None:
        raise TritonStartError("tritonserver not found: install the dev dependency nvidia-pytriton")
    t = settings.triton
    http_port = http_port or t.local_http_port
    grpc_port = grpc_port or t.local_grpc_port
    metrics_port = metrics_port or t.local_metrics_port
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    site = ensure_python_env(Path(t.python_env))
    backends = _backend_dir(server, work_dir)
    repo = build_repository(settings, work_dir / "models")
    env = dict(os.environ)
    libs = server.parent.parent.parent.parent / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    # The stub resolves its Python from PATH (as pytriton does); PYTHONPATH covers a stub that does not.
    env["PATH"] = os.pathsep.join((str(Path(t.python_env) / "bin"), env.get("PATH", "")))
    env["PYTHONPATH"] = str(site)
    env.pop("PYTHONHOME", None)
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    cmd = [
        str(server),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        f"--http-port={http_port}",
        f"--grpc-port={grpc_port}",
        f"--metrics-port={metrics_port}",
        "--allow-metrics=false",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--log-verbose=0",
    ]
    log = work_dir / "tritonserver.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=work_dir,
            start_new_session=True,
        )
    handle = TritonHandle(proc.pid, log, http_port, grpc_port, repo, proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TritonStartError(f"tritonserver exited with {proc.returncode}: {_tail(log)}")
        if _ready(http_port):
            return handle
        time.sleep(0.3)
    stop(handle)
    raise TritonStartError(f"tritonserver not ready after {timeout_s:.0f} s: {_tail(log)}")


def stop(handle: TritonHandle, timeout_s: float = 15.0) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL)."""
    try:
        os.killpg(handle.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if handle.process is not None and handle.process.poll() is not None:
            return
        if handle.process is None:
            try:
                os.kill(handle.pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(handle.pid, signal.SIGKILL)
    if handle.process is not None:
        handle.process.wait(5)


def _tail(log: Path, n: int = 1500) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
