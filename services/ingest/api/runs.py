"""Model runs, split membership, classes and jobs."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, status

from services.ingest import repository as repo
from services.ingest.api.deps import CallerDep, ContextDep, SessionDep, WriterDep
from services.ingest.schemas import ClassesIn, ClassOut, JobOut, RunIn, RunOut, RunPatch, RunRowIn
from services.ingest.service import catalog
from shared.errors import BadRequest, NotFound

router = APIRouter(prefix="/v1", tags=["runs"])


def _run_out(session: SessionDep, run: object) -> RunOut:
    out = RunOut.model_validate(run)
    return out.model_copy(update={"splits": repo.run_counts(session, out.id)})


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=RunOut)
def create_run(body: RunIn, caller: WriterDep, session: SessionDep) -> RunOut:
    return _run_out(session, catalog.create_run(session, caller.workspace_id, body.model_dump()))


@router.get("/runs", response_model=list[RunOut])
def list_runs(caller: CallerDep, session: SessionDep) -> list[RunOut]:
    return [_run_out(session, r) for r in repo.list_runs(session, caller.workspace_id)]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: int, caller: CallerDep, session: SessionDep) -> RunOut:
    return _run_out(session, catalog.get_run(session, caller.workspace_id, run_id))


@router.patch("/runs/{run_id}", response_model=RunOut)
def patch_run(run_id: int, body: RunPatch, caller: WriterDep, session: SessionDep, ctx: ContextDep) -> RunOut:
    changes = body.model_dump(exclude_none=True)
    run = catalog.update_run(session, ctx, caller.workspace_id, run_id, changes)
    return _run_out(session, run)


@router.put("/runs/{run_id}/rows")
def put_run_rows(
    run_id: int, caller: WriterDep, session: SessionDep, ctx: ContextDep, body: list[RunRowIn] = Body(...)
) -> dict[str, int]:
    if not body:
        raise BadRequest("send at least one {global_key | data_row_id, split}")
    return catalog.assign_rows(session, ctx, caller.workspace_id, run_id, [b.model_dump() for b in body])


@router.get("/classes", response_model=list[ClassOut])
def list_classes(caller: CallerDep, session: SessionDep) -> list[ClassOut]:
    return [ClassOut.model_validate(c) for c in repo.list_classes(session, caller.workspace_id)]


@router.post("/classes", response_model=list[ClassOut], status_code=status.HTTP_201_CREATED)
def create_classes(body: ClassesIn, caller: WriterDep, session: SessionDep) -> list[ClassOut]:
    items = [(c.name, c.external_id) for c in body.classes]
    return [ClassOut.model_validate(c) for c in catalog.create_classes(session, caller.workspace_id, items)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> JobOut:
    job = repo.get_job(session, caller.workspace_id, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return JobOut.model_validate(job)
