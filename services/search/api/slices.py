from __future__ import annotations

from fastapi import APIRouter, Query, Response

from services.search import service
from services.search.api.deps import CallerDep, RuntimeDep, SessionDep, WriterDep
from services.search.schemas import SliceCreate, SliceList, SliceOut, SliceRows

router = APIRouter(prefix="/v1/slices", tags=["slices"])


@router.post("", response_model=SliceOut, status_code=201, summary="Save a query as a slice")
def create(body: SliceCreate, caller: WriterDep, session: SessionDep, rt: RuntimeDep) -> SliceOut:
    return service.create_slice(session, rt.store, rt.settings, caller.workspace_id, body)


@router.get("", response_model=SliceList, summary="The workspace's slices")
def list_(caller: CallerDep, session: SessionDep) -> SliceList:
    return service.list_slices(session, caller.workspace_id)


@router.get("/{slice_id}/rows", response_model=SliceRows, summary="A slice's rows, evaluated now")
def rows(
    slice_id: int,
    caller: CallerDep,
    session: SessionDep,
    rt: RuntimeDep,
    cursor: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> SliceRows:
    return service.slice_rows(
        session, rt.store, rt.settings, caller.workspace_id, slice_id, cursor=cursor, limit=limit
    )


@router.delete("/{slice_id}", status_code=204, summary="Delete a slice and its collected members")
def delete(slice_id: int, caller: WriterDep, session: SessionDep) -> Response:
    service.delete_slice(session, caller.workspace_id, slice_id)
    return Response(status_code=204)
