"""Ground-truth and prediction imports (jobs) and exports."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from services.ingest import repository as repo
from services.ingest.api.deps import CallerDep, ContextDep, SessionDep, WriterDep
from services.ingest.schemas import JobOut
from services.ingest.service import catalog, exports, imports
from shared.db.session import session_scope
from shared.errors import PayloadTooLarge

router = APIRouter(prefix="/v1", tags=["imports"])

GtFormat = Literal["coco", "yolo", "voc", "labelbox"]
PredFormat = Literal["coco", "yolo", "ultralytics", "labelbox"]


def _read(file: UploadFile, limit: int) -> bytes:
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{file.filename}: larger than the {limit}-byte annotation file limit")
    return data


def _start(ctx: ContextDep, spec: imports.ImportSpec, data: bytes) -> JSONResponse:
    job_id, queued = imports.create_job(ctx, spec, data)
    if not queued:
        imports.run_job(ctx, job_id, data)
    with session_scope(ctx.sessions) as s:
        job = repo.get_job(s, spec.workspace_id, job_id)
        body = JobOut.model_validate(job).model_dump(mode="json")
    return JSONResponse(body, status_code=202 if queued else 201)


@router.post("/datasets/{dataset_id}/annotations", response_model=JobOut, status_code=201)
def import_annotations(
    dataset_id: int,
    caller: WriterDep,
    ctx: ContextDep,
    format: GtFormat = Query(..., description="coco | yolo (zip with data.yaml) | voc | labelbox"),
    create_classes: bool = Query(default=True, description="Create class names the file introduces."),
    file: UploadFile = File(...),
) -> JSONResponse:
    with session_scope(ctx.sessions) as s:
        catalog.get_dataset(s, caller.workspace_id, dataset_id)
    data = _read(file, ctx.settings.limits.max_json_bytes)
    spec = imports.ImportSpec(
        workspace_id=caller.workspace_id,
        kind="annotations",
        fmt=format,
        source=file.filename or "upload",
        dataset_id=dataset_id,
        create_classes=create_classes,
    )
    return _start(ctx, spec, data)


@router.get("/datasets/{dataset_id}/export")
def export_annotations(
    dataset_id: int, caller: CallerDep, session: SessionDep, format: GtFormat = Query(...)
) -> Response:
    ds = catalog.get_dataset(session, caller.workspace_id, dataset_id)
    body = exports.export_annotations(session, caller.workspace_id, ds.id, format)
    media, ext = exports.MEDIA[format]
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="dataset-{ds.id}-{format}.{ext}"'},
    )


@router.post("/runs/{run_id}/predictions", response_model=JobOut, status_code=201)
def import_predictions(
    run_id: int,
    caller: WriterDep,
    ctx: ContextDep,
    format: PredFormat = Query(..., description="coco (results) | yolo (zip) | ultralytics | labelbox"),
    dataset_id: int | None = Query(default=None, description="Also match images among this dataset's rows."),
    file: UploadFile = File(...),
) -> JSONResponse:
    with session_scope(ctx.sessions) as s:
        catalog.get_run(s, caller.workspace_id, run_id)
        if dataset_id is not None:
            catalog.get_dataset(s, caller.workspace_id, dataset_id)
    data = _read(file, ctx.settings.limits.max_json_bytes)
    spec = imports.ImportSpec(
        workspace_id=caller.workspace_id,
        kind="predictions",
        fmt=format,
        source=file.filename or "upload",
        run_id=run_id,
        dataset_id=dataset_id,
        create_classes=False,
    )
    return _start(ctx, spec, data)


@router.get("/runs/{run_id}/predictions/export")
def export_predictions(
    run_id: int, caller: CallerDep, session: SessionDep, format: PredFormat = Query(...)
) -> Response:
    run = catalog.get_run(session, caller.workspace_id, run_id)
    body = exports.export_predictions(session, caller.workspace_id, run.id, format)
    media, ext = exports.MEDIA[format]
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="run-{run.id}-{format}.{ext}"'},
    )
