"""The catalog: rows across datasets by selection, labeled or not."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.api.deps import ReadDep, SessionDep, StateDep
from services.gateway.schemas import ERRORS, CatalogPage, CatalogQuery
from services.gateway.service import catalog as service

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], responses=ERRORS)


@router.post("/query", response_model=CatalogPage, summary="Rows of a selection (ids, run filter or slice)")
async def query(body: CatalogQuery, session: SessionDep, state: StateDep, principal: ReadDep) -> dict:
    return await service.catalog_query(session, state, principal, body)
