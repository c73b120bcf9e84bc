"""Use cases: queue inference over a run's rows, and run one chunk of it (fetch, detect, write, enqueue).

A request is split into chunks of ``task_rows`` rows, one ``inference.run`` task each, all reporting to
one job. A chunk replaces the run's predictions on its rows in one transaction (delete + COPY), marks
itself done in the job (idempotent: a rerun overwrites its own entry) and, after commit, asks the
metrics service to recompute those rows. Running a chunk twice leaves the same rows, never duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from services.inference import repository as repo
from services.inference.detector import Detector
from shared.adapters.storage import ObjectStore
from shared.celery import send
from shared.contracts.tasks import ComputeRowsPayload, InferenceRunPayload, TaskName
from shared.db.enqueue import on_commit
from shared.errors import BadRequest, DependencyUnavailable, InvalidInput, NotFound
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class QueuedInference:
    job_id: uuid.UUID
    model_run_id: int
    rows: int
    tasks: int


@dataclass
class ChunkResult:
    model_run_id: int
    rows: list[int]
    predictions: int
    errors: list[dict[str, Any]] = field(default_factory=list)


def chunk_key(row_ids: Sequence[int]) -> str:
    return str(min(row_ids))


def request_inference(
    session: Session,
    celery: Celery,
    workspace_id: int,
    run_id: int,
    data_row_ids: Sequence[int] | None,
    *,
    task_rows: int,
    detector_info: dict[str, Any],
) -> QueuedInference:
    """Validate the request, create the job and (after commit) send one task per chunk of rows."""
    run = repo.get_run(session, run_id)
    if run is None or run.workspace_id != workspace_id:
        raise NotFound(f"model run {run_id} not found", context={"model_run_id": run_id})
    ids = sorted(set(data_row_ids)) if data_row_ids else repo.run_row_ids(session, run_id)
    if not ids:
        raise BadRequest(
            f"model run {run_id} has no rows: pass data_row_ids (rows of this workspace)",
            context={"model_run_id": run_id},
        )
    found = {r.id for r in repo.rows_in_workspace(session, workspace_id, ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            f"{len(missing)} data_row_ids are not rows of this workspace (first: {missing[:10]})",
            context={"missing": missing[:100]},
        )
    chunks = [ids[i : i + task_rows] for i in range(0, len(ids), task_rows)]
    job_id = repo.create_job(
        session, workspace_id, run_id, len(ids), {"rows": len(ids), "tasks": len(chunks), **detector_info}
    )
    for chunk in chunks:
        payload = InferenceRunPayload(model_run_id=run_id, data_row_ids=chunk, job_id=job_id)
        on_commit(session, partial(send, celery, TaskName.inference_run, payload))
    return QueuedInference(job_id, run_id, len(ids), len(chunks))


def _fetch(store: ObjectStore, key: str) -> bytes | Exception:
    try:
        return store.get(key)
    except Exception as exc:  # classified by the caller: missing object vs S3 down
        return exc


def _is_missing_object(exc: Exception) -> bool:
    return getattr(exc, "code", None) in {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


def run_chunk(
    session: Session,
    store: ObjectStore,
    detector: Detector,
    celery: Celery,
    payload: InferenceRunPayload,
    fetch_pool: ThreadPoolExecutor,
) -> ChunkResult:
    """Infer ``payload.data_row_ids`` of the run and replace their predictions (caller commits)."""
    run = repo.get_run(session, payload.model_run_id, lock=True)
    if run is None:
        raise NotFound(f"model run {payload.model_run_id} not found")
    rows = repo.rows_in_workspace(session, run.workspace_id, payload.data_row_ids)
    errors: list[dict[str, Any]] = [
        {"data_row_id": i, "error": "row not found in the run's workspace"}
        for i in sorted(set(payload.data_row_ids) - {r.id for r in rows})
    ]
    fetched: Iterator[bytes | Exception] = fetch_pool.map(lambda r: _fetch(store, r.object_key), rows)
    fetch_errors: dict[int, str] = {}

    def images() -> Iterator[bytes]:
        for i, item in enumerate(fetched):
            if isinstance(item, Exception):
                if not _is_missing_object(item):
                    raise DependencyUnavailable(
                        f"S3 fetch of {rows[i].object_key!r} failed: {item}"
                    ) from item
                fetch_errors[i] = f"image object {rows[i].object_key!r} is missing from S3"
                yield b""
            else:
                yield item

    classes = repo.class_ids(session, run.workspace_id, list(detector.class_names))
    class_of = [classes[name] for name in detector.class_names]
    records: list[repo.PredictionRecord] = []
    for batch in detector.iter_detect(images()):
        for res in batch:
            row = rows[res.index]
            if res.detections is None:
                errors.append({"data_row_id": row.id, "error": fetch_errors.get(res.index, res.error)})
                continue
            det = res.detections
            xywh = det.xywh
            for k in range(len(det)):
                x, y, w, h = (float(v) for v in xywh[k])
                records.append(
                    (row.id, class_of[int(det.classes[k])], x, y, w, h, min(1.0, float(det.scores[k])))
                )
    row_ids = [r.id for r in rows]
    if row_ids:
        repo.add_run_rows(session, run.id, row_ids)
    n = repo.replace_predictions(session, run.id, row_ids, records) if row_ids else 0
    if payload.job_id is not None:
        repo.record_chunk(
            session, payload.job_id, chunk_key(payload.data_row_ids), len(payload.data_row_ids), n, errors
        )
    if row_ids:
        metrics = ComputeRowsPayload(model_run_id=run.id, data_row_ids=row_ids)
        on_commit(session, partial(send, celery, TaskName.metrics_compute_rows, metrics))
    log.info(
        "inference chunk done", model_run_id=run.id, rows=len(row_ids), predictions=n, errors=len(errors)
    )
    return ChunkResult(run.id, row_ids, n, errors)
