"""Jobs, runs, and the work an import asks for after it commits (real Redis broker)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine

from services.ingest import tasks, worker
from shared.contracts.tasks import TaskName
from tests.integration.ingest.boxes import (
    COCO_GT,
    COCO_RESULTS,
    SIZES,
    coco_bytes,
    import_gt,
    import_preds,
    pred_state,
    setup_dataset,
)
from tests.integration.ingest.conftest import PREFIX, Sent

pytestmark = pytest.mark.integration


def _queued(broker: redis.Redis, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of the messages waiting in a Redis queue."""
    out = []
    for raw in broker.lrange(PREFIX + queue, 0, -1):
        msg = json.loads(raw)
        body = json.loads(base64.b64decode(msg["body"]))
        out.append((msg["headers"]["task"], body[1]))
    return out


async def test_gt_import_on_rows_in_a_run_sends_metrics_after_commit(
    client: httpx.AsyncClient, engine: Engine, sent: Sent, broker: redis.Redis
) -> None:
    ds = await setup_dataset(client)
    run = (await client.post("/v1/runs", json={"name": "det"})).json()["id"]
    split = await client.put(
        f"/v1/runs/{run}/rows",
        json=[{"global_key": k, "split": "validation"} for k in SIZES],
    )
    assert split.json() == {"rows": 3, "changed": 3}
    broker.delete(PREFIX + "metrics")
    sent.tasks.clear()
    r = await import_gt(client, ds, "coco", coco_bytes(COCO_GT))
    assert r.status_code == 201
    compute = sent.of(TaskName.metrics_compute_rows.value)
    # metrics_chunk_rows is 2 in the tests: 3 rows -> 2 tasks, each naming the run.
    assert [len(p["data_row_ids"]) for p in compute] == [2, 1]
    assert {p["model_run_id"] for p in compute} == {run}
    queued = _queued(broker, "metrics")
    assert [n for n, _ in queued] == [TaskName.metrics_compute_rows.value] * 2
    # The rows the tasks name are committed: a fresh connection sees their boxes.
    row_ids = sorted(i for p in compute for i in p["data_row_ids"])
    rows = (await client.get(f"/v1/datasets/{ds}/rows")).json()["items"]
    assert sorted(r["id"] for r in rows) == row_ids


async def test_prediction_import_sends_metrics_for_its_run(client: httpx.AsyncClient, sent: Sent) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    run = (await client.post("/v1/runs", json={"name": "det"})).json()["id"]
    sent.tasks.clear()
    assert (
        await import_preds(client, run, "coco", coco_bytes(COCO_RESULTS), dataset_id=ds)
    ).status_code == 201
    assert sent.names() == [TaskName.metrics_compute_rows.value] * 2
    assert all(p["model_run_id"] == run for p in sent.of(TaskName.metrics_compute_rows.value))


async def test_threshold_change_sends_only_the_aggregate(client: httpx.AsyncClient, sent: Sent) -> None:
    run = (await client.post("/v1/runs", json={"name": "det", "config": {"imgsz": 640}})).json()
    assert (run["iou_threshold"], run["confidence_threshold"]) == (0.5, 0.5)
    sent.tasks.clear()
    r = await client.patch(f"/v1/runs/{run['id']}", json={"confidence_threshold": 0.25})
    assert r.status_code == 200 and r.json()["confidence_threshold"] == 0.25
    assert [(n, k["model_run_id"], k["thresholds_changed"]) for n, k in sent.tasks] == [
        (TaskName.metrics_aggregate_run.value, run["id"], True)
    ]
    sent.tasks.clear()
    await client.patch(f"/v1/runs/{run['id']}", json={"confidence_threshold": 0.25})
    assert sent.tasks == []  # no change, no work
    assert (await client.patch(f"/v1/runs/{run['id']}", json={"iou_threshold": 1.5})).status_code == 422
    dup = await client.post("/v1/runs", json={"name": "det"})
    assert dup.status_code == 409


async def test_large_import_runs_as_a_background_job(
    client: httpx.AsyncClient, engine: Engine, ingest_app: Any, broker: redis.Redis, sent: Sent
) -> None:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    run = (await client.post("/v1/runs", json={"name": "big"})).json()["id"]
    big = [
        {
            "image_id": 11 + (i % 3),
            "category_id": 1 if i % 2 else 3,
            "bbox": [i % 50, i % 40, 10.0, 5.5],
            "score": (i % 100) / 100,
        }
        for i in range(30_000)
    ]
    data = coco_bytes(big)
    assert len(data) > 2_000_000  # past the test's async_import_bytes
    sent.tasks.clear()
    r = await import_preds(client, run, "coco", data, "big.json", dataset_id=ds)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.json()["status"] == "queued"
    queued = _queued(broker, "ingest")
    assert queued == [(TaskName.ingest_import.value, {"job_id": job_id})]
    assert pred_state(engine, run) == []
    # Run the queued message as the ingest worker does.
    worker.use_context(ingest_app.state.ctx)
    result = tasks.ingest_import(**queued[0][1])
    assert result["boxes"] == 30_000
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["processed"], job["total"]) == ("succeeded", 30_000, 30_000)
    assert len(pred_state(engine, run)) == 30_000
    # Delivered twice (a worker died after commit): the job is left as it is.
    assert tasks.ingest_import(**queued[0][1])["boxes"] == 30_000
    assert len(pred_state(engine, run)) == 30_000


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404
