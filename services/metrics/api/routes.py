"""Internal routes of the metrics service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.metrics import service
from services.metrics.api.deps import SessionDep
from shared.errors import NotFound

router = APIRouter(prefix="/v1/internal", tags=["metrics"])


@router.get("/runs/{model_run_id}/status", summary="How far a run's metrics are")
def run_status(model_run_id: int, session: SessionDep) -> dict[str, Any]:
    status = service.run_status(session, model_run_id)
    if status is None:
        raise NotFound(f"model run {model_run_id} does not exist", context={"model_run_id": model_run_id})
    return status
