"""Import ground truth into a dataset or predictions into a run, as a job, all-or-nothing.

Flow: the job row commits first (so progress and failures are visible); the import runs in its own
transaction that also marks the job succeeded; any error rolls the import back and records the job as
failed with the error. An import *replaces* the boxes of every image it names (GT: in the dataset;
predictions: in the run), so importing the same file twice gives the same state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from services.ingest import repository as repo
from services.ingest.context import IngestContext
from services.ingest.domain import check_boxes
from services.ingest.formats import coco, labelbox, ultralytics, voc, yolo
from services.ingest.formats.base import BoxTable, gc_paused
from services.ingest.service import followups
from services.ingest.service.resolve import RowIndex, resolve_classes, resolve_rows
from shared.celery import broker_check, send
from shared.contracts.tasks import IngestImportPayload, TaskName
from shared.db.enqueue import on_commit
from shared.db.models.enums import JobStatus
from shared.db.session import session_scope
from shared.errors import BadRequest, BlindspotError, NotFound
from shared.logging import get_logger

log = get_logger(__name__)

GT_FORMATS = ("coco", "yolo", "voc", "labelbox")
PRED_FORMATS = ("coco", "yolo", "ultralytics", "labelbox")


@dataclass(frozen=True)
class ImportSpec:
    workspace_id: int
    kind: str  # "annotations" | "predictions"
    fmt: str
    source: str
    dataset_id: int | None = None
    run_id: int | None = None
    create_classes: bool = True
    object_key: str | None = None  # set when the file waits in S3 for the worker


def parse(spec: ImportSpec, data: bytes, max_bytes: int) -> BoxTable:
    predictions = spec.kind == "predictions"
    fmt, src = spec.fmt, spec.source
    if fmt == "coco":
        return coco.parse_results(data, src) if predictions else coco.parse_gt(data, src)
    if fmt == "yolo":
        return yolo.parse(data, src, predictions=predictions, max_bytes=max_bytes)
    if fmt == "voc" and not predictions:
        return voc.parse(data, src, max_bytes=max_bytes)
    if fmt == "labelbox":
        return labelbox.parse(data, src, predictions=predictions)
    if fmt == "ultralytics" and predictions:
        return ultralytics.parse(data, src)
    allowed = PRED_FORMATS if predictions else GT_FORMATS
    raise BadRequest(f"format {fmt!r} is not accepted for {spec.kind}; use one of {', '.join(allowed)}")


Progress = Callable[[int, int], None]


def apply(
    session: Session, ctx: IngestContext, spec: ImportSpec, data: bytes, progress: Progress
) -> dict[str, Any]:
    """Parse, check and write one import inside ``session``'s transaction. Raises a 4xx on bad input."""
    t0 = time.perf_counter()
    with gc_paused():
        table = parse(spec, data, ctx.settings.limits.max_json_bytes)
    t_parse = time.perf_counter()
    n = len(table)
    progress(0, n)
    if spec.kind == "predictions":
        assert spec.run_id is not None
        repo.lock_run(session, spec.run_id)
        keys = [r.key for r in table.images if r.key is not None]
        ids = [r.row_id for r in table.images if r.row_id is not None]
        candidates = repo.rows_of_run(session, spec.run_id)
        if spec.dataset_id is not None:
            candidates += repo.rows_of_dataset(session, spec.dataset_id)
        if keys:
            candidates += repo.rows_by_keys(session, spec.workspace_id, keys)
        if ids:
            candidates += repo.rows_by_ids(session, spec.workspace_id, ids)
    else:
        assert spec.dataset_id is not None
        repo.lock_dataset(session, spec.dataset_id)
        candidates = repo.rows_of_dataset(session, spec.dataset_id)
    rows = resolve_rows(table, RowIndex(candidates))
    class_ids, created = resolve_classes(
        session, spec.workspace_id, table, create=spec.kind == "annotations" and spec.create_classes
    )
    row_id = np.asarray([r.id for r in rows], dtype=np.int64)
    width = np.asarray([r.width for r in rows], dtype=np.float64)
    height = np.asarray([r.height for r in rows], dtype=np.float64)
    box_row = row_id[table.image_idx] if n else np.zeros(0, dtype=np.int64)
    bw = width[table.image_idx] if n else np.zeros(0)
    bh = height[table.image_idx] if n else np.zeros(0)
    xywh = table.xywh
    if table.normalized and n:
        cx, cy, w, h = xywh[:, 0] * bw, xywh[:, 1] * bh, xywh[:, 2] * bw, xywh[:, 3] * bh
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    checked = check_boxes(xywh, table.conf, bw, bh, table.where)
    box_class = class_ids[table.class_idx] if n else np.zeros(0, dtype=np.int64)
    progress(n // 2, n)
    t_check = time.perf_counter()
    touched = [r.id for r in rows]
    if spec.kind == "predictions":
        assert spec.run_id is not None
        conf = table.conf if table.conf is not None else np.ones(n)
        repo.add_run_rows(session, spec.run_id, touched)
        repo.replace_predictions(session, spec.run_id, touched, box_row, box_class, checked.xywh, conf)
        runs = {spec.run_id: touched}
    else:
        area = table.area if table.area is not None else np.full(n, np.nan)
        area = (
            np.where(
                np.isnan(area) | (checked.xywh[:, 2] * checked.xywh[:, 3] != xywh[:, 2] * xywh[:, 3]),
                checked.xywh[:, 2] * checked.xywh[:, 3],
                area,
            )
            if n
            else area
        )
        crowd = table.iscrowd if table.iscrowd is not None else np.zeros(n, dtype=bool)
        repo.replace_annotations(
            session, spec.workspace_id, touched, box_row, box_class, checked.xywh, area, crowd
        )
        coco_ids = [
            (r.id, ref.coco_id)
            for r, ref in zip(rows, table.images, strict=True)
            if isinstance(ref.coco_id, int) and ref.key is not None
        ]
        repo.set_coco_ids(session, coco_ids)
        runs = repo.runs_of_rows(session, touched)
        # Labels changed: search refreshes the rows' payload (labeled, classes) and their slices.
        followups.rows_changed(session, ctx, spec.workspace_id, touched)
    followups.boxes_changed(session, ctx, runs)
    progress(n, n)
    return {
        "rows": len(touched),
        "boxes": n,
        "clipped": checked.clipped,
        "classes_created": created,
        "runs_recomputed": sorted(runs),
        "seconds": {
            "parse": round(t_parse - t0, 3),
            "match_and_check": round(t_check - t_parse, 3),
            "write": round(time.perf_counter() - t_check, 3),
        },
    }


def _spec_of(params: dict[str, Any]) -> ImportSpec:
    return ImportSpec(**params)


def create_job(ctx: IngestContext, spec: ImportSpec, data: bytes) -> tuple[uuid.UUID, bool]:
    """Record the job. Large files wait in S3 for the ``ingest`` worker (returns ``(id, queued)``)."""
    queued = len(data) > ctx.settings.ingest.async_import_bytes
    job_id = uuid.uuid4()
    if queued:
        key = f"ws/{spec.workspace_id}/imports/{job_id}"
        ctx.store.put(key, data)
        spec = ImportSpec(**{**asdict(spec), "object_key": key})
    with session_scope(ctx.sessions) as s:
        repo.create_job(s, job_id, spec.workspace_id, f"import_{spec.kind}", asdict(spec), spec.run_id)
        if queued:
            on_commit(
                s,
                lambda: send(ctx.celery, TaskName.ingest_import, IngestImportPayload(job_id=job_id)),
                check=broker_check(ctx.celery),
            )
    return job_id, queued


def run_job(ctx: IngestContext, job_id: uuid.UUID, data: bytes | None = None) -> dict[str, Any]:
    """Run an import job (inline or from the worker). Safe to run twice: a finished job is left alone."""
    with session_scope(ctx.sessions) as s:
        job = repo.lock_job(s, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found or being run by another worker")
        if job.status in (JobStatus.succeeded, JobStatus.failed):
            return dict(job.result)
        spec = _spec_of(job.params)
        job.status = JobStatus.running.value
    if data is None:
        if spec.object_key is None:
            raise BadRequest(f"job {job_id} has no stored file")
        data = ctx.store.get(spec.object_key)

    def progress(done: int, total: int) -> None:
        repo.set_progress(ctx.engine, job_id, done, total)

    try:
        with session_scope(ctx.sessions) as s:
            result = apply(s, ctx, spec, data, progress)
            repo.finish_job(
                s, job_id, JobStatus.succeeded.value, result=result, errors=[], processed=result["boxes"]
            )
    except BlindspotError as exc:
        with session_scope(ctx.sessions) as s:
            repo.finish_job(s, job_id, JobStatus.failed.value, result={}, errors=[exc.to_dict()])
        exc.context.setdefault("job_id", str(job_id))
        raise
    except Exception as exc:
        log.exception("import failed", job_id=str(job_id))
        with session_scope(ctx.sessions) as s:
            repo.finish_job(
                s,
                job_id,
                JobStatus.failed.value,
                result={},
                errors=[{"error": "internal_error", "detail": f"{type(exc).__name__}: {exc}"[:500]}],
            )
        raise
    if spec.object_key:
        try:
            ctx.store.delete(spec.object_key)
        except Exception:  # the import is committed; a leftover upload is harmless
            log.warning("could not delete import upload", key=spec.object_key)
    return result
