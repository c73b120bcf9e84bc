"""Model runs (read side; creation and updates are forwarded to ingest)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.gateway import domain
from services.gateway.api.deps import ReadDep, SessionDep
from services.gateway.repository import runs as repo
from services.gateway.schemas import ERRORS, RunList, RunOut
from services.gateway.service.gallery import load_run
from shared.db.models import ModelRun

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERRORS)
RunId = Annotated[int, Path(ge=1, le=2**62)]


def run_out(run: ModelRun, counts: dict[str, int] | None = None) -> dict:
    return {
        "id": run.id,
        "name": run.name,
        "version": run.version,
        "iou_threshold": run.iou_threshold,
        "confidence_threshold": run.confidence_threshold,
        "config": run.config or {},
        "created_at": run.created_at,
        "aggregated_at": run.aggregated_at,
        "rows_per_split": counts,
    }


@router.get("", response_model=RunList, summary="List the workspace's model runs")
async def list_runs(
    session: SessionDep,
    principal: ReadDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict:
    after = domain.decode_cursor(cursor, "runs")["id"] if cursor else None
    runs = await repo.list_runs(session, principal.workspace_id, limit + 1, after)
    more = len(runs) > limit
    runs = runs[:limit]
    nxt = domain.encode_cursor({"sig": "runs", "id": runs[-1].id}) if more and runs else None
    return {"runs": [run_out(r) for r in runs], "next_cursor": nxt}


@router.get("/{run_id}", response_model=RunOut, summary="One model run with its rows per split")
async def get_run(run_id: RunId, session: SessionDep, principal: ReadDep) -> dict:
    run = await load_run(session, principal, run_id)
    return run_out(run, await repo.run_row_counts(session, run.id))
