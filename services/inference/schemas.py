"""HTTP bodies of the inference service."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class InferRequest(BaseModel):
    data_row_ids: list[int] | None = Field(
        default=None,
        max_length=1_000_000,
        description="Rows to run the detector on; omitted = every row of the run.",
    )


class InferAccepted(BaseModel):
    job_id: uuid.UUID
    model_run_id: int
    rows: int
    tasks: int
    detector: dict[str, str]
