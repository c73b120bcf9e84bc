"""Metrics drill-down: every bucket and cell carries the gallery filter of its rows."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from services.gateway.api.deps import ReadDep, SessionDep, StateDep
from services.gateway.schemas import ERRORS, AutoSlices, ClassMetricsTable, Confusion, Curves, Histogram, Tide
from services.gateway.service import metrics as service

router = APIRouter(prefix="/v1/runs", tags=["metrics"], responses=ERRORS)
RunId = Annotated[int, Path(ge=1, le=2**62)]
SplitQ = Annotated[Literal["train", "validation", "test", "unassigned"] | None, Query()]
SplitAllQ = Annotated[Literal["all", "train", "validation", "test", "unassigned"] | None, Query()]
ClassQ = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get(
    "/{run_id}/metrics/classes", response_model=ClassMetricsTable, summary="Per-class metrics per split"
)
async def classes(run_id: RunId, session: SessionDep, principal: ReadDep, split: SplitAllQ = None) -> dict:
    return {"classes": await service.class_table(session, principal, run_id, split)}


@router.get(
    "/{run_id}/metrics/histogram",
    response_model=Histogram,
    summary="Histogram of a per-row metric, overall or for one class; each bucket links to its rows",
)
async def histogram(
    run_id: RunId,
    session: SessionDep,
    state: StateDep,
    principal: ReadDep,
    metric: Annotated[str, Query(min_length=1, max_length=64, examples=["recall"])],
    class_name: ClassQ = None,
    split: SplitQ = None,
    bins: Annotated[int, Query(ge=1, le=100)] = 10,
    iou_threshold: Annotated[float | None, Query(ge=0.5, le=0.95)] = None,
    confidence_threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> dict:
    return await service.histogram(
        session,
        state,
        principal,
        run_id,
        metric,
        class_name,
        split,
        bins,
        iou_threshold,
        confidence_threshold,
    )


@router.get(
    "/{run_id}/metrics/confusion",
    response_model=Confusion,
    summary="Confusion matrix at the run's thresholds; each cell links to its rows",
)
async def confusion(
    run_id: RunId, session: SessionDep, state: StateDep, principal: ReadDep, split: SplitQ = None
) -> dict:
    return await service.confusion(session, state, principal, run_id, split)


@router.get("/{run_id}/metrics/curves", response_model=Curves, summary="PR and F1-vs-confidence curves")
async def curves(
    run_id: RunId, session: SessionDep, principal: ReadDep, class_name: ClassQ = None, split: SplitAllQ = None
) -> dict:
    return {"curves": await service.curves(session, principal, run_id, class_name, split)}


@router.get("/{run_id}/metrics/tide", response_model=Tide, summary="TIDE dAP per error type and class")
async def tide(run_id: RunId, session: SessionDep, principal: ReadDep, split: SplitAllQ = None) -> dict:
    return {"rows": await service.tide(session, principal, run_id, split)}


@router.get("/{run_id}/auto-slices", response_model=AutoSlices, summary="Error slices of a run with counts")
async def auto_slices(
    run_id: RunId, session: SessionDep, state: StateDep, principal: ReadDep, split: SplitQ = None
) -> dict:
    return {"slices": await service.auto_slices(session, state, principal, run_id, split)}
