"""Request and response bodies of the public API (OpenAPI at /openapi.json, docs at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.gateway.domain import Filter, Sort
from shared.db.models.enums import ApiScope

ScopeName = Literal["read", "write", "admin"]
Id = Annotated[int, Field(ge=1, le=2**62)]


class ErrorBody(BaseModel):
    error: str = Field(examples=["bad_request"])
    detail: str = Field(examples=["filter field 'recal': unknown field (see docs/api.md, Filters)"])
    context: dict[str, Any] | None = Field(default=None, examples=[{"field": "recal"}])


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request (the detail names the field)"},
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"},
    403: {"model": ErrorBody, "description": "The key's scope is too small"},
    404: {"model": ErrorBody, "description": "Not found in this workspace"},
}


# ------------------------------------------------------------------------------------------------- auth
class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "acme"}]})
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    key_name: str = Field(default="admin", min_length=1, max_length=200)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "ci", "scopes": ["read"]}]}
    )
    name: str = Field(min_length=1, max_length=200)
    scopes: list[ScopeName] = Field(
        default_factory=lambda: ["read"],  # type: ignore[arg-type]
        min_length=1,
        max_length=3,
    )


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(
        description="The key itself: shown once, never again.", examples=["bsk_3f2a9c0d1e7b_..."]
    )


class WorkspaceCreated(BaseModel):
    workspace_id: int
    name: str
    api_key: ApiKeyCreated


class ApiKeyList(BaseModel):
    keys: list[ApiKeyOut]


class Me(BaseModel):
    workspace_id: int
    key_id: int
    scopes: list[str]


# ---------------------------------------------------------------------------------------------- gallery
class GalleryQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filter": {"all": [{"field": "iou", "op": "lt", "value": 0.5}]},
                    "sort": {"field": "iou", "order": "asc"},
                    "limit": 50,
                },
                {
                    "filter": {
                        "all": [
                            {"field": "recall", "class_name": "person", "op": "gte", "value": 0.2},
                            {"field": "recall", "class_name": "person", "op": "lt", "value": 0.3},
                        ]
                    },
                    "sort": {"field": "confidence", "order": "asc"},
                    "iou_threshold": 0.75,
                    "confidence_threshold": 0.3,
                },
            ]
        },
    )
    filter: Filter = Field(default_factory=Filter)
    sort: Sort = Field(default_factory=Sort)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=2000)
    iou_threshold: float | None = Field(default=None, ge=0.5, le=0.95, description="On the 0.05 grid.")
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    include_total: bool = Field(default=False, description="Also count every matching row (slower).")


class ObjectOut(BaseModel):
    kind: Literal["gt", "pred"]
    id: int
    class_name: str
    box: list[float] = Field(description="[x, y, w, h] absolute pixels, x/y top-left")
    confidence: float | None
    status: str | None = Field(description="TP, FP or FN at the query's thresholds")
    iou: float | None
    error_type: str | None
    matched_object_id: int | None
    iscrowd: bool = False


class GalleryRow(BaseModel):
    data_row_id: int
    global_key: str
    dataset_id: int
    split: str | None = None
    width: int
    height: int
    thumbnail_url: str | None
    image_url: str | None
    metadata: dict[str, Any]
    metrics: dict[str, Any]
    sort_value: float | None = None
    objects: list[ObjectOut]


class GalleryPage(BaseModel):
    rows: list[GalleryRow]
    next_cursor: str | None
    total: int | None = None
    iou_threshold: float
    confidence_threshold: float


# ------------------------------------------------------------------------------------------------- runs
class RunOut(BaseModel):
    id: int
    name: str
    version: str
    iou_threshold: float
    confidence_threshold: float
    config: dict[str, Any]
    created_at: datetime | None
    aggregated_at: datetime | None
    rows_per_split: dict[str, int] | None = None


class RunList(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class ClassMetricsOut(BaseModel):
    split: str
    class_id: int
    class_name: str | None = Field(description="None for the run summary row (class_id 0)")
    num_gt: int
    num_pred: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    ap: float | None
    ap50: float | None
    ap75: float | None
    ap_small: float | None
    ap_medium: float | None
    ap_large: float | None
    ar1: float | None
    ar10: float | None
    ar100: float | None
    best_conf_threshold: float | None
    best_f1: float | None


class ClassMetricsTable(BaseModel):
    classes: list[ClassMetricsOut]


class Bucket(BaseModel):
    lo: float | None = Field(description="Inclusive low edge; null for the bucket of rows without a value")
    hi: float | None = Field(description="Exclusive high edge (inclusive for the last bucket)")
    count: int
    filter: dict[str, Any] = Field(description="Gallery filter returning exactly this bucket's rows")


class Histogram(BaseModel):
    metric: str
    class_name: str | None
    split: str | None
    buckets: list[Bucket]


class ConfusionCellOut(BaseModel):
    gt_class: str | None
    pred_class: str | None
    count: int = Field(description="Object pairs in the cell")
    rows: int = Field(description="Rows with at least one pair in the cell (what the filter returns)")
    filter: dict[str, Any]


class Confusion(BaseModel):
    split: str | None
    classes: list[str]
    cells: list[ConfusionCellOut]


class Curve(BaseModel):
    split: str
    class_name: str | None
    pr_curve: dict[str, Any] | None
    f1_curve: dict[str, Any] | None
    best_conf_threshold: float | None
    best_f1: float | None


class Curves(BaseModel):
    curves: list[Curve]


class TideRow(BaseModel):
    split: str
    class_name: str | None
    ap: float | None
    tide: dict[str, Any] | None


class Tide(BaseModel):
    rows: list[TideRow]


class AutoSlice(BaseModel):
    key: str
    name: str
    description: str
    filter: dict[str, Any]
    sort: dict[str, Any]
    count: int


class AutoSlices(BaseModel):
    slices: list[AutoSlice]


class RowOut(BaseModel):
    data_row_id: int
    global_key: str
    dataset_id: int
    width: int
    height: int
    media_type: str
    image_url: str | None
    thumbnail_url: str | None
    metadata: dict[str, Any]
    num_annotations: int
    model_run_id: int | None
    split: str | None = None
    metrics: dict[str, Any] | None
    objects: list[ObjectOut]


# ---------------------------------------------------------------------------------------------- catalog
class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_row_ids: list[Id] | None = Field(default=None, max_length=10_000)
    filter: Filter | None = None
    model_run_id: Id | None = Field(default=None, description="The run a filter selection reads")
    slice_id: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> Selection:
        given = [x for x in (self.data_row_ids, self.filter, self.slice_id) if x is not None]
        if len(given) != 1:
            raise ValueError("selection needs exactly one of data_row_ids, filter (+ model_run_id), slice_id")
        if self.filter is not None and self.model_run_id is None:
            raise ValueError("a filter selection needs model_run_id")
        return self


class CatalogQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"selection": {"slice_id": 3}, "annotation": "none", "limit": 100}]},
    )
    selection: Selection | None = None
    annotation: Literal["none", "any"] | None = None
    dataset_ids: list[Id] | None = Field(default=None, max_length=1000)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class CatalogRow(BaseModel):
    data_row_id: int
    global_key: str
    dataset_id: int
    width: int
    height: int
    num_annotations: int
    thumbnail_url: str | None
    metadata: dict[str, Any]


class CatalogPage(BaseModel):
    rows: list[CatalogRow]
    next_cursor: str | None


# --------------------------------------------------------------------------------------------- labeling
class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "night-fix"}]})
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    num_rows: int = 0
    created_at: datetime | None = None


class ProjectList(BaseModel):
    projects: list[ProjectOut]


class BatchCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "low recall persons",
                    "priority": 2,
                    "idempotency_key": "2026-11-25-low-recall-persons",
                    "selection": {
                        "filter": {
                            "all": [{"field": "recall", "class_name": "person", "op": "lt", "value": 0.3}]
                        },
                        "model_run_id": 1,
                    },
                    "model_run_id": 1,
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=3, ge=1, le=5)
    idempotency_key: str = Field(min_length=1, max_length=200)
    selection: Selection
    model_run_id: Id | None = Field(default=None, description="The run whose boxes become pre-labels")
    max_rows: int = Field(default=10_000, ge=1, le=100_000)


class BatchOut(BaseModel):
    id: int
    project_id: int
    name: str
    priority: int
    idempotency_key: str
    model_run_id: int | None
    created_at: datetime | None = None


class BatchCreated(BaseModel):
    batch: BatchOut
    added: list[int]
    skipped: list[int] = Field(description="Rows already in the project (not added again)")
    replayed: bool = Field(default=False, description="True when the idempotency key was used before")


class BatchList(BaseModel):
    batches: list[BatchOut]


class LabelsImported(BaseModel):
    rows_updated: int
    boxes_written: int
    metrics_recompute: list[dict[str, Any]] = Field(description="Runs whose metrics were re-triggered")


# ----------------------------------------------------------------------------------------------- compare
class CompareSummary(BaseModel):
    run_id: int
    other_run_id: int
    counts: dict[str, int] = Field(description="Rows per status")
    filters: dict[str, dict[str, Any]]


SCOPES = [s.value for s in ApiScope]
