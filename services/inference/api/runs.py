"""POST /v1/runs/{id}/infer: run the configured detector over a run's rows (internal)."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.inference import service
from services.inference.api.deps import SessionDep, StateDep, WriterDep
from services.inference.schemas import InferAccepted, InferRequest

router = APIRouter(prefix="/v1", tags=["inference"])


@router.post(
    "/runs/{run_id}/infer",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=InferAccepted,
    summary="Queue the detector over the run's rows; progress on the returned job",
)
def infer_run(
    run_id: int, body: InferRequest, caller: WriterDep, session: SessionDep, state: StateDep
) -> InferAccepted:
    queued = service.request_inference(
        session,
        state.celery,
        caller.workspace_id,
        run_id,
        body.data_row_ids,
        task_rows=state.settings.inference.task_rows,
        detector_info=dict(state.detector_info),
    )
    return InferAccepted(
        job_id=queued.job_id,
        model_run_id=queued.model_run_id,
        rows=queued.rows,
        tasks=queued.tasks,
        detector=state.detector_info,
    )
