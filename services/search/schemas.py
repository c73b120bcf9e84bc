"""HTTP DTOs of the search service (the gateway calls these routes with the internal headers)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.db.models.enums import ErrorType, ObjectKind, Split

MetaValue = str | int | float | bool


class RowFilter(BaseModel):
    """Filters on rows; every part is optional and they combine with AND.

    ``splits`` and ``error_types`` are per run, so they need ``model_run_id``.
    ``class_names`` matches rows with a ground-truth box or a prediction of one of those classes.
    ``metadata`` matches rows whose metadata has every given key with that exact value.
    """

    model_config = ConfigDict(extra="forbid")

    annotation: Literal["none", "any"] | None = None
    dataset_ids: list[int] | None = Field(default=None, max_length=1000)
    model_run_id: int | None = None
    splits: list[Split] | None = None
    class_names: list[str] | None = Field(default=None, max_length=1000)
    error_types: list[ErrorType] | None = None
    metadata: dict[str, MetaValue] | None = None

    @model_validator(mode="after")
    def _needs_run(self) -> RowFilter:
        for name in ("splits", "error_types"):
            if getattr(self, name) and self.model_run_id is None:
                raise ValueError(f"filter.{name} needs filter.model_run_id (splits and errors are per run)")
        return self


class ObjectRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_run_id: int
    kind: ObjectKind
    object_id: int


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_row_ids: list[int] = Field(default_factory=list, max_length=1000)
    object_ids: list[ObjectRef] = Field(default_factory=list, max_length=1000)
    combine: Literal["any", "mean"] = Field(
        default="any",
        description="any: union of each anchor's nearest rows, best score per row; mean: one query"
        " with the normalised mean of the anchors.",
    )
    target: Literal["images", "objects"] = Field(
        default="images", description="Rank whole images, or objects (crops), reported per row."
    )
    filter: RowFilter = Field(default_factory=RowFilter)
    limit: int = Field(default=50, ge=1, le=500)
    score_threshold: float | None = Field(default=None, ge=-1, le=1)
    include_anchors: bool = Field(default=False, description="Keep the anchor rows in the results.")
    cursor: str | None = None

    @model_validator(mode="after")
    def _anchors(self) -> SimilarRequest:
        if not self.data_row_ids and not self.object_ids:
            raise ValueError("give data_row_ids or object_ids (the anchors of the similarity query)")
        return self


class ObjectHit(BaseModel):
    model_run_id: int
    kind: ObjectKind
    object_id: int


class SimilarRow(BaseModel):
    data_row_id: int
    score: float | None
    object: ObjectHit | None = None


class SimilarResponse(BaseModel):
    rows: list[SimilarRow]
    next_cursor: str | None


class SliceSimilarity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_row_ids: list[int] = Field(min_length=1, max_length=1000)
    score_threshold: float = Field(ge=-1, le=1)


class SliceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    dataset_id: int | None = None
    model_run_id: int | None = None
    filter: dict[str, Any] = Field(default_factory=dict)
    similarity: SliceSimilarity | None = None

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(RowFilter.model_fields))
        if unknown:
            raise ValueError(
                f"a slice filter cannot hold {unknown}: it may hold {sorted(RowFilter.model_fields)}"
                " (metric filters need a run's metrics and live in the gallery)"
            )
        RowFilter.model_validate(v)
        return v


class SliceOut(BaseModel):
    id: int
    name: str
    dataset_id: int | None
    model_run_id: int | None
    filter: dict[str, Any]
    similarity: SliceSimilarity | None
    members: int = 0


class SliceList(BaseModel):
    slices: list[SliceOut]


class SliceRows(BaseModel):
    rows: list[SimilarRow]
    next_cursor: str | None


class ProjectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int | None = None
    model_run_id: int | None = None
    method: Literal["umap", "pca"] = "umap"

    @model_validator(mode="after")
    def _scope(self) -> ProjectionCreate:
        if (self.dataset_id is None) == (self.model_run_id is None):
            raise ValueError("give exactly one of dataset_id or model_run_id")
        return self


class ProjectionOut(BaseModel):
    id: int
    dataset_id: int | None
    model_run_id: int | None
    method: str
    status: str
    num_points: int


class ProjectionList(BaseModel):
    projections: list[ProjectionOut]


class ProjectionPointOut(BaseModel):
    data_row_id: int
    x: float
    y: float


class ProjectionPoints(BaseModel):
    points: list[ProjectionPointOut]
    next_cursor: str | None
