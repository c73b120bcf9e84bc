"""One row at full resolution, with a run's objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.gateway.api.deps import ReadDep, SessionDep, StateDep
from services.gateway.repository import gallery as gallery_repo
from services.gateway.repository import runs as repo
from services.gateway.schemas import ERRORS, RowOut
from services.gateway.service.gallery import run_scope
from shared.errors import NotFound

router = APIRouter(prefix="/v1/rows", tags=["runs"], responses=ERRORS)


@router.get(
    "/{row_id}", response_model=RowOut, summary="One row: presigned image URL, GT and a run's objects"
)
async def get_row(
    row_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    state: StateDep,
    principal: ReadDep,
    model_run_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    iou_threshold: Annotated[float | None, Query(ge=0.5, le=0.95)] = None,
    confidence_threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> dict:
    row = await repo.get_row(session, principal.workspace_id, row_id)
    if row is None:
        raise NotFound(f"data row {row_id} not found in this workspace", context={"data_row_id": row_id})
    scope = None
    metrics = None
    split = None
    if model_run_id is not None:
        scope = await run_scope(session, principal, model_run_id, iou_threshold, confidence_threshold)
        details = await gallery_repo.row_details(session, scope, [row_id])
        if row_id in details:
            d = details[row_id]
            split = d.get("split")
            metrics = {
                k: v
                for k, v in d.items()
                if k
                not in {
                    "id",
                    "global_key",
                    "dataset_id",
                    "width",
                    "height",
                    "object_key",
                    "thumbnail_key",
                    "metadata",
                    "split",
                    "has_gt",
                    "has_pred",
                }
            }
    objects = await gallery_repo.row_objects(session, scope, [row_id])
    return {
        "data_row_id": row.id,
        "global_key": row.global_key,
        "dataset_id": row.dataset_id,
        "width": row.width,
        "height": row.height,
        "media_type": row.media_type,
        "image_url": state.presign(row.object_key),
        "thumbnail_url": state.presign(row.thumbnail_key or row.object_key),
        "metadata": row.metadata_ or {},
        "num_annotations": row.num_annotations,
        "model_run_id": model_run_id,
        "split": split,
        "metrics": metrics,
        "objects": objects[row_id],
    }
