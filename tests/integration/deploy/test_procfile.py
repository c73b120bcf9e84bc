"""The Procfile (local stack), docker-compose.yml and the k8s base run the same processes, and every
module they name exists."""

from __future__ import annotations

import importlib.util
import re
import shlex

import yaml

from blindspot.stack.runner import SERVICES
from shared.contracts.tasks import Queue
from shared.settings import REPO_ROOT


def procfile() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def app_targets(command: list[str]) -> str:
    if command[0] == "uvicorn":
        return command[1]
    return command[command.index("-A") + 1]


def test_every_service_and_queue_has_a_process() -> None:
    entries = procfile()
    for name in SERVICES:
        command = entries[name]
        assert command[:2] == ["uvicorn", f"services.{name}.main:create_app"] and "--factory" in command
        assert f"${{BLINDSPOT_{name.upper()}_PORT" in " ".join(command)
    owners = {"ingest": "ingest", "inference": "inference", "metrics": "metrics", "embeddings": "search"}
    for queue in Queue:
        command = entries[f"worker_{queue.value}"]
        assert app_targets(command) == f"services.{owners[queue.value]}.worker:app"
        assert command[command.index("-Q") + 1] == queue.value


def test_every_named_module_exists() -> None:
    for name, command in procfile().items():
        module, _, attr = app_targets(command).partition(":")
        assert importlib.util.find_spec(module) is not None, f"{name}: {module} does not exist"
        assert attr


def test_compose_and_k8s_run_the_procfile_commands() -> None:
    targets = {app_targets(c) for c in procfile().values()}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    compose_targets = {
        app_targets(s["command"])
        for s in compose["services"].values()
        if isinstance(s.get("command"), list) and s["command"][0] in {"uvicorn", "celery"}
    }
    assert compose_targets == targets
    k8s_targets = set()
    for path in (REPO_ROOT / "deploy" / "k8s" / "base").glob("*/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                command = doc["spec"]["template"]["spec"]["containers"][0]["command"]
                k8s_targets.add(app_targets(command))
    assert k8s_targets == targets
    assert all(re.fullmatch(r"services\.\w+\.(main:create_app|worker:app)", t) for t in targets)
