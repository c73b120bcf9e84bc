"""The gallery: a run's rows filtered by any metric, sorted, in keyset pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import ORJSONResponse

from services.gateway.api.deps import ReadDep, SessionDep, StateDep
from services.gateway.schemas import ERRORS, CompareSummary, GalleryPage, GalleryQuery
from services.gateway.service import gallery as service
from services.gateway.service import metrics as metrics_service

router = APIRouter(prefix="/v1/runs", tags=["gallery"], responses=ERRORS)
RunId = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/{run_id}/gallery",
    response_model=GalleryPage,
    summary="Query a run's gallery (filter, sort, keyset cursor, thresholds per query)",
    description=(
        'Filter language: `{"all": [cond...], "any": [cond...]}`, cond = `{field, op, value, class_name?}`.'
        " Fields: any per-row metric (iou, confidence, min_confidence, max_confidence, precision, recall, f1,"
        " tp, fp, fn, num_gt, num_pred, lb_*, n_cls...n_miss), optionally restricted to a class with"
        " `class_name`; attributes split, class_in_gt, class_in_pred, annotation (none|any),"
        " metadata.<key>, error_type, slice_id, similar_to, compare, confusion, data_row_id, dataset_id."
        " A bucket [lo, hi) is `gte lo` + `lt hi`. An unknown field is a 400 naming it."
    ),
)
async def query_gallery(
    run_id: RunId, body: GalleryQuery, session: SessionDep, state: StateDep, principal: ReadDep
) -> ORJSONResponse:
    # The page is built to the GalleryPage shape; returning the response skips re-validating every row.
    return ORJSONResponse(await service.gallery_page(session, state, principal, run_id, body))


@router.get(
    "/{run_id}/compare/{other_run_id}",
    response_model=CompareSummary,
    summary="Rows per diff status against another run on the same rows, with the gallery filters",
)
async def compare(
    run_id: RunId,
    other_run_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    state: StateDep,
    principal: ReadDep,
) -> dict:
    return await metrics_service.compare_summary(session, state, principal, run_id, other_run_id)
