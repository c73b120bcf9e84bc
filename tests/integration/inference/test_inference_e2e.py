"""inference.run end to end on real servers: S3 (SeaweedFS) -> detector (tritonserver over gRPC and HTTP,
or ONNX Runtime in-process) -> Postgres -> metrics.compute_rows in the Redis broker.

The API test goes one step further: POST /v1/runs/{id}/infer -> inference.run messages on the broker
-> the task body runs them (as the worker would) -> the job shows the progress and succeeds.
"""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from blindspot.stack.triton import TritonHandle
from services.inference import tasks
from services.inference.main import create_app
from shared.adapters.storage import ObjectStore
from shared.adapters.triton import Triton, TritonModelMissing
from shared.celery import make_celery
from shared.contracts.tasks import InferenceRunPayload, Queue, TaskName
from shared.internal_auth import internal_headers
from shared.settings import (
    CelerySettings,
    DatabaseSettings,
    InferenceSettings,
    RedisSettings,
    S3Settings,
    Settings,
    TritonSettings,
)
from tools.demo_data import CLASSES, generate

pytestmark = [pytest.mark.integration]

# Redis databases 11-15 are other areas' test/benchmark brokers; this one is the inference tests' own.
BROKER_URL = os.environ.get("BLINDSPOT_TEST_INFERENCE_REDIS_URL", "redis://127.0.0.1:6379/10")
N_IMAGES = 10


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Seeded:
    workspace_id: int
    run_id: int
    row_ids: list[int]
    missing_row_id: int  # a row whose image is not in S3


def _seed(db_url: str, store: ObjectStore) -> Seeded:
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(_libpq(db_url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO workspaces (name) VALUES (%s) RETURNING id", (f"inference-{tag}",))
        ws = cur.fetchone()[0]  # type: ignore[index]
        cur.execute("INSERT INTO datasets (workspace_id, name) VALUES (%s, 'demo') RETURNING id", (ws,))
        ds = cur.fetchone()[0]  # type: ignore[index]
        # one class already exists under the detector's name: it must be reused, not duplicated
        cur.execute("INSERT INTO classes (workspace_id, name, external_id) VALUES (%s, 'car', 2)", (ws,))
        row_ids = []
        for i, (img, meta) in enumerate(generate(N_IMAGES + 1, seed=4242)):
            key = f"ws{ws}/{tag}/{i}.jpg"
            if i < N_IMAGES:
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=92)
                store.put(key, buf.getvalue(), "image/jpeg")
            cur.execute(
                "INSERT INTO data_rows (workspace_id, dataset_id, global_key, object_key, width, height, sha256)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (ws, ds, f"{tag}/{i}", key, meta.width, meta.height, "0" * 64),
            )
            row_ids.append(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(
            "INSERT INTO model_runs (workspace_id, name) VALUES (%s, %s) RETURNING id", (ws, f"yolo-{tag}")
        )
        run_id = cur.fetchone()[0]  # type: ignore[index]
    return Seeded(ws, run_id, row_ids[:N_IMAGES], row_ids[N_IMAGES])


def _predictions(db_url: str, run_id: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(db_url)) as conn:
        return conn.execute(
            "SELECT p.data_row_id, c.name, round(p.x::numeric, 2), round(p.y::numeric, 2),"
            " round(p.w::numeric, 2), round(p.h::numeric, 2), round(p.confidence::numeric, 4)"
            " FROM predictions p JOIN classes c ON c.id = p.class_id WHERE p.model_run_id = %s"
            " ORDER BY 1, 7 DESC, 3, 4",
            (run_id,),
        ).fetchall()


def _queued(r: redis.Redis, queue: Queue) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message waiting in ``queue`` on the broker."""
    out = []
    for raw in r.lrange(queue.value, 0, -1):
        msg = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(msg["body"]))
        out.append((msg["headers"]["task"], kwargs))
    return out


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(BROKER_URL)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture
def celery_app() -> Celery:
    return make_celery(
        "inference-test",
        Settings(redis=RedisSettings(url=BROKER_URL), celery=CelerySettings()),
    )


def _settings(db_url: str, s3: S3Settings, triton: TritonSettings | None = None) -> Settings:
    return Settings(
        database=DatabaseSettings(url=db_url),
        s3=s3,
        redis=RedisSettings(url=BROKER_URL),
        triton=triton or TritonSettings(enabled=False),
        inference=InferenceSettings(batch_size=4, task_rows=4, confidence=0.05),
    )


def _run_and_check(
    settings: Settings, celery_app: Celery, broker: redis.Redis, seeded: Seeded, db_url: str
) -> list[tuple[Any, ...]]:
    rt = tasks.build_runtime(settings, celery_app)
    tasks.bind_runtime(rt)
    try:
        ids = [*seeded.row_ids, seeded.missing_row_id]
        first = tasks.run(model_run_id=seeded.run_id, data_row_ids=ids, job_id=None)
        preds = _predictions(db_url, seeded.run_id)
        assert first["predictions"] == len(preds) > N_IMAGES  # several objects per scene
        assert {p[1] for p in preds} <= set(CLASSES)
        assert [e["data_row_id"] for e in first["errors"]] == [seeded.missing_row_id]
        assert "missing from S3" in first["errors"][0]["error"]
        # rerun: replaces, never duplicates
        again = tasks.run(model_run_id=seeded.run_id, data_row_ids=ids, job_id=None)
        assert again["predictions"] == first["predictions"]
        assert _predictions(db_url, seeded.run_id) == preds
    finally:
        tasks.bind_runtime(None)
        rt.close()
    with psycopg.connect(_libpq(db_url)) as conn:
        names = conn.execute(
            "SELECT name, count(*) FROM classes WHERE workspace_id = %s GROUP BY name", (seeded.workspace_id,)
        ).fetchall()
        members = conn.execute(
            "SELECT count(*) FROM model_run_rows WHERE model_run_id = %s", (seeded.run_id,)
        ).fetchone()
    assert dict(names) == dict.fromkeys(CLASSES, 1)  # created by name once; 'car' reused
    assert members is not None and members[0] == N_IMAGES + 1
    metrics = _queued(broker, Queue.metrics)
    assert len(metrics) == 2  # one per run of the task, sent after commit
    assert all(name == TaskName.metrics_compute_rows.value for name, _ in metrics)
    assert sorted(metrics[0][1]["data_row_ids"]) == sorted(ids)
    assert metrics[0][1]["model_run_id"] == seeded.run_id
    return preds


def test_embedded_onnx_end_to_end(
    db_url: str, s3_settings: S3Settings, object_store: ObjectStore, celery_app: Celery, broker: redis.Redis
) -> None:
    seeded = _seed(db_url, object_store)
    _run_and_check(_settings(db_url, s3_settings), celery_app, broker, seeded, db_url)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_end_to_end_matches_embedded(
    protocol: str,
    tritonserver: TritonHandle,
    db_url: str,
    s3_settings: S3Settings,
    object_store: ObjectStore,
    celery_app: Celery,
    broker: redis.Redis,
) -> None:
    url = tritonserver.grpc_url if protocol == "grpc" else tritonserver.http_url
    triton = TritonSettings(enabled=True, url=url, protocol=protocol, timeout_s=30)  # type: ignore[arg-type]
    seeded = _seed(db_url, object_store)
    via_triton = _run_and_check(_settings(db_url, s3_settings, triton), celery_app, broker, seeded, db_url)
    # the same ONNX in-process gives the same predictions
    broker.flushdb()
    local = _seed(db_url, object_store)
    in_process = _run_and_check(_settings(db_url, s3_settings), celery_app, broker, local, db_url)
    strip = [p[1:] for p in via_triton]
    assert strip == [p[1:] for p in in_process]


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_metadata_batching_and_missing_model(protocol: str, tritonserver: TritonHandle) -> None:
    import numpy as np

    url = tritonserver.grpc_url if protocol == "grpc" else tritonserver.http_url
    client = Triton(url, protocol, timeout_s=30, retries=1, backoff_s=0.05)  # type: ignore[arg-type]
    try:
        info = client.model_info("yolov8_demo")
        assert info.max_batch_size == 32
        assert info.inputs[0].name == "images" and info.inputs[0].datatype == "FP32"
        assert info.outputs[0].name == "output0"
        batch = np.random.default_rng(0).random(
            (40, 3, 256, 256), dtype=np.float32
        )  # > max batch: 2 requests
        out = client.infer("yolov8_demo", {"images": batch})["output0"]
        assert out.shape == (40, 4 + len(CLASSES), 1344)
        single = client.infer("yolov8_demo", {"images": batch[39:]})["output0"]
        np.testing.assert_allclose(out[39:], single, rtol=1e-4, atol=1e-4)
        assert "yolov8_demo" in client.ready_models()
        with pytest.raises(TritonModelMissing, match="no ready model 'nope'") as err:
            client.model_info("nope")
        assert "yolov8_demo" in err.value.context["ready_models"]
    finally:
        client.close()


def test_api_queues_chunks_and_job_tracks_progress(
    db_url: str, s3_settings: S3Settings, object_store: ObjectStore, celery_app: Celery, broker: redis.Redis
) -> None:
    seeded = _seed(db_url, object_store)
    settings = _settings(db_url, s3_settings)
    app = create_app(settings, celery=celery_app)
    headers = internal_headers(seeded.workspace_id)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["checks"]["model"]["ok"] is True
        unknown = client.post("/v1/runs/999999999/infer", json={}, headers=headers)
        assert unknown.status_code == 404
        foreign = client.post(
            f"/v1/runs/{seeded.run_id}/infer",
            json={"data_row_ids": [seeded.row_ids[0], 999999999]},
            headers=headers,
        )
        assert foreign.status_code == 422 and "999999999" in foreign.json()["detail"]
        no_rows = client.post(f"/v1/runs/{seeded.run_id}/infer", json={}, headers=headers)
        assert no_rows.status_code == 400  # the run has no rows yet and none were named
        assert client.post(f"/v1/runs/{seeded.run_id}/infer", json={}).status_code == 401
        resp = client.post(
            f"/v1/runs/{seeded.run_id}/infer", json={"data_row_ids": seeded.row_ids}, headers=headers
        )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["rows"] == N_IMAGES and body["tasks"] == 3  # task_rows=4
    queued = sorted(_queued(broker, Queue.inference), key=lambda q: min(q[1]["data_row_ids"]))
    assert [n for n, _ in queued] == [TaskName.inference_run.value] * 3
    job_id = uuid.UUID(body["job_id"])
    rt = tasks.build_runtime(settings, celery_app)
    try:
        for i, (_, kwargs) in enumerate(queued):
            tasks.run_inference(rt, InferenceRunPayload.model_validate(kwargs))
            with psycopg.connect(_libpq(db_url)) as conn:
                status, processed, total = conn.execute(
                    "SELECT status, processed, total FROM jobs WHERE id = %s", (job_id,)
                ).fetchone()  # type: ignore[misc]
            assert total == N_IMAGES
            assert processed == min(N_IMAGES, 4 * (i + 1))
            assert status == ("succeeded" if i == 2 else "running")
        # a redelivered chunk neither double-counts progress nor duplicates predictions
        n_before = len(_predictions(db_url, seeded.run_id))
        tasks.run_inference(rt, InferenceRunPayload.model_validate(queued[0][1]))
        assert len(_predictions(db_url, seeded.run_id)) == n_before
        with psycopg.connect(_libpq(db_url)) as conn:
            processed, result = conn.execute(
                "SELECT processed, result FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()  # type: ignore[misc]
        assert processed == N_IMAGES and result["predictions"] == n_before
    finally:
        rt.close()
