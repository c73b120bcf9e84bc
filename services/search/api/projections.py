from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Query

from services.search import projections
from services.search.api.deps import CallerDep, RuntimeDep, SessionDep, WriterDep
from services.search.schemas import ProjectionCreate, ProjectionList, ProjectionOut, ProjectionPoints
from shared.contracts.tasks import ProjectPayload, TaskName
from shared.db.enqueue import on_commit

router = APIRouter(prefix="/v1/projections", tags=["projector"])


@router.post("", response_model=ProjectionOut, status_code=202, summary="Queue a 2-D map (UMAP or PCA)")
def create(body: ProjectionCreate, caller: WriterDep, session: SessionDep, rt: RuntimeDep) -> ProjectionOut:
    p = projections.create(session, caller.workspace_id, body)
    on_commit(session, partial(rt.send, TaskName.search_project, ProjectPayload(projection_id=p.id)))
    return ProjectionOut(
        id=p.id,
        dataset_id=p.dataset_id,
        model_run_id=p.model_run_id,
        method=p.method,
        status=p.status,
        num_points=0,
    )


@router.get("", response_model=ProjectionList, summary="The workspace's projections, newest first")
def list_(
    caller: CallerDep,
    session: SessionDep,
    model_run_id: int | None = None,
    dataset_id: int | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> ProjectionList:
    return projections.list_(
        session, caller.workspace_id, model_run_id=model_run_id, dataset_id=dataset_id, limit=limit
    )


@router.get("/{projection_id}", response_model=ProjectionOut, summary="A projection's status")
def get(projection_id: int, caller: CallerDep, session: SessionDep) -> ProjectionOut:
    return projections.get(session, caller.workspace_id, projection_id)


@router.get("/{projection_id}/points", response_model=ProjectionPoints, summary="Points, keyset pages")
def points(
    projection_id: int,
    caller: CallerDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(default=5000, ge=1, le=20000),
) -> ProjectionPoints:
    return projections.points(session, caller.workspace_id, projection_id, cursor=cursor, limit=limit)
