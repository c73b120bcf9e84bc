from __future__ import annotations

from fastapi import APIRouter

from services.search import service
from services.search.api.deps import CallerDep, RuntimeDep, SessionDep
from services.search.schemas import SimilarRequest, SimilarResponse

router = APIRouter(prefix="/v1", tags=["similarity"])


@router.post("/similar", response_model=SimilarResponse, summary="Rows nearest to anchor rows or objects")
def similar(body: SimilarRequest, caller: CallerDep, session: SessionDep, rt: RuntimeDep) -> SimilarResponse:
    return service.similar(session, rt.store, rt.settings, caller.workspace_id, body)
