"""The gallery filter language, validated without I/O.

The filter language (docs/api.md, "Filters") is JSON: ``{"all": [cond, ...], "any": [cond, ...]}``, every
``all`` condition must hold and, when ``any`` is given, at least one of its conditions. A condition is
``{"field", "op", "value", "class_name"?}``. This module validates a filter into typed conditions with
messages that name the offending field; ``repository/gallery.py`` turns them into SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db.models.enums import ErrorType, Split
from shared.errors import BadRequest

Op = Literal["lt", "lte", "gt", "gte", "eq", "ne", "between", "in", "is_null", "not_null"]
COMPARE_OPS = {"lt", "lte", "gt", "gte", "eq", "ne"}


class Condition(BaseModel):
    """One condition of a gallery filter."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        description="A metric (iou, confidence, precision, recall, f1, tp, fp, fn, ...) or "
        "an attribute (split, class_in_gt, class_in_pred, annotation, metadata.<key>, "
        "error_type, slice_id, similar_to, compare, confusion, data_row_id, dataset_id)."
    )
    op: Op = "eq"
    value: Any = None
    class_name: str | None = Field(default=None, description="Restrict a metric (or error_type) to a class.")
    min_confidence: float | None = Field(
        default=None, ge=0, le=1, description="error_type only: the erring prediction's confidence floor."
    )


class Filter(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "all": [
                        {"field": "recall", "class_name": "person", "op": "gte", "value": 0.2},
                        {"field": "recall", "class_name": "person", "op": "lt", "value": 0.3},
                        {"field": "split", "op": "eq", "value": "validation"},
                    ]
                }
            ]
        },
    )

    all: list[Condition] = Field(default_factory=list, max_length=64)
    any: list[Condition] = Field(default_factory=list, max_length=64)


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(default="data_row_id", description="A metric name or data_row_id.")
    order: Literal["asc", "desc"] = "asc"
    class_name: str | None = None


# Public metric name -> column of row_metrics / row_class_metrics.
METRIC_COLUMNS: dict[str, str] = {
    "iou": "mean_iou",
    "mean_iou": "mean_iou",
    "confidence": "mean_conf",
    "mean_confidence": "mean_conf",
    "min_confidence": "min_conf",
    "max_confidence": "max_conf",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "tp": "tp",
    "fp": "fp",
    "fn": "fn",
    "num_gt": "num_gt",
    "num_pred": "num_pred",
    "lb_iou": "lb_iou",
    "lb_tp": "lb_tp",
    "lb_fp": "lb_fp",
    "lb_fn": "lb_fn",
    "n_cls": "n_cls",
    "n_loc": "n_loc",
    "n_both": "n_both",
    "n_dupe": "n_dupe",
    "n_bkg": "n_bkg",
    "n_miss": "n_miss",
}
# Metrics in [0, 1] (histograms over [0, 1]); the others are counts (integer buckets).
RATE_COLUMNS = {"mean_iou", "mean_conf", "min_conf", "max_conf", "precision", "recall", "f1", "lb_iou"}
# Columns with a (run, metric, row) index (migration gateway01): keyset pages stay index range scans.
INDEXED_METRICS = ("mean_iou", "mean_conf", "min_conf", "precision", "recall", "f1", "tp", "fp", "fn")
# Columns that depend on the IoU/confidence thresholds (recomputed from object_matches when they differ).
THRESHOLD_COLUMNS = (
    "num_gt",
    "num_pred",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "mean_iou",
    "min_conf",
    "mean_conf",
    "max_conf",
)
ATTRIBUTES = {
    "split",
    "class_in_gt",
    "class_in_pred",
    "annotation",
    "error_type",
    "slice_id",
    "similar_to",
    "compare",
    "confusion",
    "data_row_id",
    "dataset_id",
}
COMPARE_STATUSES = ("fixed", "regressed", "new_error", "still_wrong")
IOU_GRID = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


def _bad(field_name: str, message: str) -> BadRequest:
    return BadRequest(f"filter field {field_name!r}: {message}", context={"field": field_name})


def _number(field_name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _bad(field_name, f"value must be a finite number, got {v!r}")
    return float(v)


def sql_number(v: Any) -> int | float:
    """An int that fits a bigint stays an int (integer columns keep their index); others become float8."""
    if isinstance(v, int) and not isinstance(v, bool) and -(2**62) <= v <= 2**62:
        return v
    return float(v)


def _check_scalar_op(c: Condition, numeric: bool) -> None:
    conv = (lambda v: _number(c.field, v)) if numeric else (lambda v: v)
    if c.op in COMPARE_OPS:
        if c.value is None:
            raise _bad(c.field, f"op {c.op!r} needs a value")
        conv(c.value)
    elif c.op == "between":
        if not isinstance(c.value, list) or len(c.value) != 2:
            raise _bad(c.field, "op 'between' needs value [lo, hi]")
        lo, hi = (conv(v) for v in c.value)
        if numeric and lo > hi:
            raise _bad(c.field, "between needs lo <= hi")
    elif c.op == "in":
        if not isinstance(c.value, list) or not c.value or len(c.value) > 10_000:
            raise _bad(c.field, "op 'in' needs a non-empty list (at most 10,000 values)")
        for v in c.value:
            conv(v)


@dataclass(frozen=True)
class MetricCond:
    column: str
    op: str
    value: Any
    class_name: str | None


@dataclass(frozen=True)
class AttrCond:
    field: str  # attribute name, or "metadata" with key
    op: str
    value: Any
    class_name: str | None = None
    key: str | None = None
    min_confidence: float | None = None


@dataclass
class ParsedFilter:
    all: list[MetricCond | AttrCond] = field(default_factory=list)
    any: list[MetricCond | AttrCond] = field(default_factory=list)

    def conditions(self) -> list[MetricCond | AttrCond]:
        return [*self.all, *self.any]

    def class_names(self) -> set[str]:
        names: set[str] = set()
        for c in self.conditions():
            if c.class_name:
                names.add(c.class_name)
            if isinstance(c, AttrCond) and c.field in {"class_in_gt", "class_in_pred"}:
                names.update(c.value if isinstance(c.value, list) else [c.value])
            if isinstance(c, AttrCond) and c.field == "confusion":
                names.update(n for n in (c.value["gt_class"], c.value["pred_class"]) if n is not None)
        return names


def parse_condition(c: Condition) -> MetricCond | AttrCond:
    name = c.field
    if name in METRIC_COLUMNS:
        value: Any = None
        if c.op in COMPARE_OPS | {"between", "in"}:
            _check_scalar_op(c, numeric=True)
            value = [sql_number(v) for v in c.value] if isinstance(c.value, list) else sql_number(c.value)
        if c.min_confidence is not None:
            raise _bad(name, "min_confidence applies to error_type only")
        return MetricCond(METRIC_COLUMNS[name], c.op, value, c.class_name)
    if name.startswith("metadata."):
        key = name.removeprefix("metadata.")
        if not key:
            raise _bad(name, "metadata needs a key: metadata.<key>")
        value = c.value
        if c.op in {"lt", "lte", "gt", "gte", "between"}:
            _check_scalar_op(c, numeric=True)
            value = [sql_number(v) for v in c.value] if isinstance(c.value, list) else sql_number(c.value)
        else:
            _check_scalar_op(c, numeric=False)
        return AttrCond("metadata", c.op, value, key=key)
    if name not in ATTRIBUTES:
        raise _bad(name, "unknown field (see docs/api.md, Filters)")
    if c.class_name is not None and name not in {"error_type"}:
        raise _bad(name, "class_name applies to metrics and error_type only")
    if c.min_confidence is not None and name != "error_type":
        raise _bad(name, "min_confidence applies to error_type only")
    value = c.value
    if name == "split":
        _need_ops(c, {"eq", "ne", "in"})
        for v in value if isinstance(value, list) else [value]:
            if v not in {s.value for s in Split}:
                raise _bad(name, f"unknown split {v!r}; one of {[s.value for s in Split]}")
    elif name in {"class_in_gt", "class_in_pred"}:
        _need_ops(c, {"eq", "in"})
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str) or not v:
                raise _bad(name, "value must be a class name or a list of class names")
    elif name == "annotation":
        _need_ops(c, {"eq"})
        if value not in {"none", "any"}:
            raise _bad(name, "value must be 'none' or 'any'")
    elif name == "error_type":
        _need_ops(c, {"eq", "ne", "in", "not_null", "is_null"})
        for v in value if isinstance(value, list) else ([] if value is None else [value]):
            if v not in {e.value for e in ErrorType}:
                raise _bad(name, f"unknown error type {v!r}; one of {[e.value for e in ErrorType]}")
        if c.op in {"eq", "ne", "in"} and value is None:
            raise _bad(name, f"op {c.op!r} needs a value")
    elif name in {"slice_id", "data_row_id", "dataset_id"}:
        _need_ops(c, {"eq", "in", "ne"} if name != "slice_id" else {"eq", "in"})
        for v in value if isinstance(value, list) else [value]:
            if not is_id(v):
                raise _bad(name, "value must be an id (integer) or a list of ids")
        if isinstance(value, list) and (not value or len(value) > 10_000):
            raise _bad(name, "list must hold 1 to 10,000 ids")
    elif name == "similar_to":
        _need_ops(c, {"eq"})
        if not isinstance(value, dict) or not isinstance(value.get("data_row_ids"), list):
            raise _bad(name, "value must be {data_row_ids: [...], score_threshold?: float, limit?: int}")
        ids = value["data_row_ids"]
        if not ids or len(ids) > 1000 or not all(is_id(i) for i in ids):
            raise _bad(name, "data_row_ids must hold 1 to 1,000 ids")
        thr = value.get("score_threshold")
        if thr is not None:
            _number(name, thr)
        lim = value.get("limit", 1000)
        if isinstance(lim, bool) or not isinstance(lim, int) or not 1 <= lim <= 10_000:
            raise _bad(name, "limit must be an integer in [1, 10000]")
        value = {"data_row_ids": ids, "score_threshold": thr, "limit": lim}
    elif name == "compare":
        _need_ops(c, {"eq"})
        if not isinstance(value, dict) or not is_id(value.get("other_run_id")):
            raise _bad(
                name, "value must be {other_run_id: int, status: fixed|regressed|new_error|still_wrong}"
            )
        if value.get("status") not in COMPARE_STATUSES:
            raise _bad(name, f"status must be one of {list(COMPARE_STATUSES)}")
        value = {"other_run_id": value["other_run_id"], "status": value["status"]}
    elif name == "confusion":
        _need_ops(c, {"eq"})
        if not isinstance(value, dict) or set(value) - {"gt_class", "pred_class"}:
            raise _bad(name, "value must be {gt_class: name|null, pred_class: name|null}")
        gt, pred = value.get("gt_class"), value.get("pred_class")
        if gt is None and pred is None:
            raise _bad(name, "gt_class and pred_class cannot both be null")
        value = {"gt_class": gt, "pred_class": pred}
    return AttrCond(name, c.op, value, class_name=c.class_name, min_confidence=c.min_confidence)


MAX_ID = 2**62


def is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_ID


def _need_ops(c: Condition, allowed: set[str]) -> None:
    if c.op not in allowed:
        raise _bad(c.field, f"op {c.op!r} not allowed; use one of {sorted(allowed)}")


def parse_filter(f: Filter | None) -> ParsedFilter:
    if f is None:
        return ParsedFilter()
    return ParsedFilter(
        all=[parse_condition(c) for c in f.all],
        any=[parse_condition(c) for c in f.any],
    )


def sort_column(sort: Sort) -> str | None:
    """The metric column a sort uses, None for data_row_id order; 400 naming an unknown field."""
    if sort.field == "data_row_id":
        if sort.class_name:
            raise BadRequest("sort 'class_name' needs a metric field", context={"field": "sort.class_name"})
        return None
    if sort.field not in METRIC_COLUMNS:
        raise BadRequest(f"sort field {sort.field!r}: unknown metric", context={"field": "sort.field"})
    return METRIC_COLUMNS[sort.field]


def iou_bit(iou_threshold: float) -> int:
    """The tp_mask bit of an IoU threshold on the COCO grid 0.50:0.05:0.95."""
    k = round((iou_threshold - 0.5) / 0.05)
    if not 0 <= k <= 9 or abs(IOU_GRID[k] - iou_threshold) > 1e-6:
        raise BadRequest(
            f"iou_threshold {iou_threshold} must be on the grid 0.50, 0.55, ..., 0.95",
            context={"field": "iou_threshold"},
        )
    return 1 << k
