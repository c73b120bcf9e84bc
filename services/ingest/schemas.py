"""HTTP request/response bodies of the ingest service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.db.models.enums import Split


class DatasetIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    created_at: datetime
    num_rows: int = 0


class RowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    global_key: str
    width: int
    height: int
    sha256: str
    media_type: str
    object_key: str
    thumbnail_key: str | None
    num_annotations: int
    metadata: dict[str, Any] = Field(validation_alias="metadata_")


class RowPage(BaseModel):
    items: list[RowOut]
    next_cursor: str | None


class UploadOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rows: list[dict[str, Any]]


class ClassIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    external_id: int | None = Field(default=None, ge=0)


class ClassesIn(BaseModel):
    classes: list[ClassIn] = Field(min_length=1, max_length=10_000)


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    external_id: int | None


class RunIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(default="1", min_length=1, max_length=100)
    iou_threshold: float = Field(default=0.5, gt=0, le=1)
    confidence_threshold: float = Field(default=0.5, ge=0, le=1)
    config: dict[str, Any] = Field(default_factory=dict)


class RunPatch(BaseModel):
    iou_threshold: float | None = Field(default=None, gt=0, le=1)
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    config: dict[str, Any] | None = None


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    version: str
    iou_threshold: float
    confidence_threshold: float
    config: dict[str, Any]
    created_at: datetime
    splits: dict[str, int] = Field(default_factory=dict)


class RunRowIn(BaseModel):
    global_key: str | None = None
    data_row_id: int | None = None
    split: Literal["train", "validation", "test", "unassigned"] = Split.unassigned.value

    @model_validator(mode="after")
    def _one_id(self) -> RunRowIn:
        if (self.global_key is None) == (self.data_row_id is None):
            raise ValueError("give exactly one of global_key or data_row_id")
        return self


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: str
    status: str
    processed: int
    total: int
    errors: list[Any]
    result: dict[str, Any]
    model_run_id: int | None
    created_at: datetime
    updated_at: datetime
