"""Labeling projects and batches: create, export with pre-labels, import labels back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, status

from services.gateway.api.deps import ReadDep, SessionDep, StateDep, WriteDep
from services.gateway.schemas import (
    ERRORS,
    BatchCreate,
    BatchCreated,
    BatchList,
    LabelsImported,
    ProjectCreate,
    ProjectList,
    ProjectOut,
)
from services.gateway.service import labeling as service

router = APIRouter(prefix="/v1", tags=["labeling"], responses=ERRORS)
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/projects", response_model=ProjectOut, status_code=status.HTTP_201_CREATED, summary="Create a project"
)
async def create_project(body: ProjectCreate, session: SessionDep, principal: WriteDep) -> dict:
    return await service.create_project(session, principal, body.name, body.description)


@router.get("/projects", response_model=ProjectList, summary="List labeling projects")
async def list_projects(session: SessionDep, principal: ReadDep) -> dict:
    return {"projects": await service.list_projects(session, principal)}


@router.get("/projects/{project_id}/batches", response_model=BatchList, summary="List a project's batches")
async def list_batches(project_id: Id, session: SessionDep, principal: ReadDep) -> dict:
    return {"batches": await service.list_batches(session, principal, project_id)}


@router.post(
    "/projects/{project_id}/batches",
    response_model=BatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a batch from a selection (idempotent by idempotency_key; rows already queued are skipped)",
)
async def create_batch(
    project_id: Id, body: BatchCreate, session: SessionDep, state: StateDep, principal: WriteDep
) -> dict:
    return await service.create_batch(session, state, principal, project_id, body)


@router.get(
    "/batches/{batch_id}/export",
    summary="Export a batch: Label Studio tasks JSON or COCO, the run's boxes as pre-labels",
    response_model=None,
)
async def export_batch(
    batch_id: Id,
    session: SessionDep,
    state: StateDep,
    principal: ReadDep,
    format: Annotated[Literal["label_studio", "coco"], Query()] = "label_studio",
) -> Any:
    return await service.export_batch(session, state, principal, batch_id, format)


@router.post(
    "/batches/{batch_id}/labels",
    response_model=LabelsImported,
    summary="Import labels (Label Studio export JSON or COCO): replaces GT, re-triggers metrics",
)
async def import_labels(
    batch_id: Id,
    session: SessionDep,
    state: StateDep,
    principal: WriteDep,
    payload: Annotated[
        list[dict[str, Any]] | dict[str, Any],
        Body(examples=[[{"data": {"data_row_id": 1}, "annotations": [{"result": []}]}]]),
    ],
) -> dict:
    return await service.import_labels(session, state, principal, batch_id, payload)
