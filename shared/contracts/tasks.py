"""Celery task names, queues and payloads: the only way services ask each other for background work.

A producer sends ``celery_app.send_task(TaskName.X, kwargs=Payload(...).model_dump(mode="json"),
queue=QUEUE_OF[TaskName.X])`` after its transaction commits; the consumer validates the same model.
Every task takes ids and is safe to run twice.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, Field


class Queue(StrEnum):
    ingest = "ingest"
    inference = "inference"
    metrics = "metrics"
    embeddings = "embeddings"


class TaskName(StrEnum):
    # services/metrics
    metrics_compute_rows = "metrics.compute_rows"
    metrics_aggregate_run = "metrics.aggregate_run"
    # services/inference
    inference_run = "inference.run"
    # services/search
    search_embed_rows = "search.embed_rows"
    search_embed_objects = "search.embed_objects"
    search_match_slices = "search.match_slices"
    search_project = "search.project"
    # services/ingest
    ingest_import = "ingest.import"


QUEUE_OF: dict[TaskName, Queue] = {
    TaskName.metrics_compute_rows: Queue.metrics,
    TaskName.metrics_aggregate_run: Queue.metrics,
    TaskName.inference_run: Queue.inference,
    TaskName.search_embed_rows: Queue.embeddings,
    TaskName.search_embed_objects: Queue.embeddings,
    TaskName.search_match_slices: Queue.embeddings,
    TaskName.search_project: Queue.embeddings,
    TaskName.ingest_import: Queue.ingest,
}


class ComputeRowsPayload(BaseModel):
    """Recompute per-object and per-row metrics of these rows in this run (after GT/predictions change)."""

    model_run_id: int
    data_row_ids: list[int] = Field(min_length=1)
    job_id: uuid.UUID | None = None


class AggregateRunPayload(BaseModel):
    """Recompute per-class metrics (AP, curves, confusion, TIDE) of a run from its stored matches.

    ``thresholds_changed``: the run's IoU/confidence thresholds were just changed (send after the
    PATCH commits): per-row metrics are first rewritten from the stored matches by SQL (no new
    matching), then per-class metrics. ``debounce_token``: set by metrics.compute_rows so that N row
    tasks of a run trigger one aggregation (a task whose token is no longer current does nothing).
    """

    model_run_id: int
    thresholds_changed: bool = False
    debounce_token: str | None = None


class InferenceRunPayload(BaseModel):
    model_run_id: int
    data_row_ids: list[int] = Field(min_length=1)
    job_id: uuid.UUID | None = None


class EmbedRowsPayload(BaseModel):
    workspace_id: int
    data_row_ids: list[int] = Field(min_length=1)


class EmbedObjectsPayload(BaseModel):
    model_run_id: int
    data_row_ids: list[int] = Field(min_length=1)


class MatchSlicesPayload(BaseModel):
    """Evaluate every slice of the workspace on these newly ingested rows."""

    workspace_id: int
    data_row_ids: list[int] = Field(min_length=1)


class ProjectPayload(BaseModel):
    projection_id: int


class IngestImportPayload(BaseModel):
    job_id: uuid.UUID
