"""Row-metric sources of a run: the stored tables, or the same columns recomputed at other thresholds.

At the run's thresholds the gallery reads ``row_metrics`` / ``row_class_metrics`` (indexed). At any other
(IoU on the 0.50:0.05:0.95 grid, confidence) pair it aggregates ``object_matches`` with the definitions of
docs/metrics.md ("Thresholds without recompute"):

* a prediction counts when ``confidence >= c`` and it is not ignored (matched to a crowd/ignored GT);
* TP = counted predictions whose ``tp_mask`` has the bit of the IoU threshold;
* FP = counted predictions - TP; FN = non-crowd, non-ignored GT - TP;
* precision = TP / (TP + FP) (None without predictions), recall = TP / (TP + FN) (None without GT),
  F1 = 2 TP / (2 TP + FP + FN) (None when both are None);
* mean IoU over TP predictions, min/mean/max confidence over counted predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, FromClause, Subquery

from services.gateway.domain import THRESHOLD_COLUMNS, iou_bit
from shared.db.models import ModelRunRow, ObjectMatch, RowClassMetrics, RowMetrics

RM = RowMetrics.__table__
RCM = RowClassMetrics.__table__
OM = ObjectMatch.__table__
MRR = ModelRunRow.__table__

METRIC_COLS = (
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
    "lb_iou",
    "lb_tp",
    "lb_fp",
    "lb_fn",
    "n_cls",
    "n_loc",
    "n_both",
    "n_dupe",
    "n_bkg",
    "n_miss",
)


@dataclass
class RunScope:
    """The run a query reads and the thresholds it reads it at."""

    run_id: int
    workspace_id: int
    run_iou: float
    run_conf: float
    iou: float
    conf: float
    class_ids: dict[str, int] = field(default_factory=dict)

    @property
    def custom(self) -> bool:
        return abs(self.iou - self.run_iou) > 1e-9 or abs(self.conf - self.run_conf) > 1e-9

    @property
    def bit(self) -> int:
        return iou_bit(self.iou)


def kept_pred(om: object, conf: float) -> ColumnElement[bool]:
    """A prediction that shows and counts at confidence ``conf``."""
    c = om.c  # type: ignore[attr-defined]
    return and_(c.kind == "pred", func.coalesce(c.confidence, 1.0) >= conf, not_(c.ignored))


def _agg(scope: RunScope, *, class_id: int | None, row_ids: Sequence[int] | None) -> Subquery:
    """Per-row (or per row of one class) numbers at ``scope``'s thresholds, from object_matches alone.

    Same definitions as the metrics service's ``ROW_METRICS_AT_SQL`` (docs/metrics.md): counted
    predictions have ``confidence >= c``; TP has the IoU's ``tp_mask`` bit; FP is neither TP nor matched
    to an ignored GT (``ign_mask``); FN = non-ignored GT - TP.
    """
    om = OM.alias("om_agg")
    bit = scope.bit
    k1 = bit.bit_length()  # 1-based index of the IoU in match_ious
    pred = and_(om.c.kind == "pred", func.coalesce(om.c.confidence, 1.0) >= scope.conf)
    tp = and_(pred, om.c.tp_mask.op("&")(bit) != 0)
    fp = and_(pred, om.c.tp_mask.op("&")(bit) == 0, om.c.ign_mask.op("&")(bit) == 0)
    gt = and_(om.c.kind == "gt", not_(om.c.ignored))
    conds = [om.c.model_run_id == scope.run_id]
    if class_id is not None:
        conds.append(om.c.class_id == class_id)
    if row_ids is not None:
        conds.append(om.c.data_row_id.in_(list(row_ids)))
    conf = func.coalesce(om.c.confidence, 1.0)
    inner = (
        select(
            om.c.data_row_id,
            func.count().filter(gt).label("num_gt"),
            func.count().filter(pred).label("num_pred"),
            func.count().filter(tp).label("tp"),
            func.count().filter(fp).label("fp"),
            func.count().filter(or_(pred, om.c.kind == "gt")).label("present"),
            func.sum(func.coalesce(om.c.match_ious[k1], om.c.match_iou, om.c.iou))
            .filter(tp)
            .label("iou_sum"),
            func.min(conf).filter(pred).label("min_conf"),
            func.avg(conf).filter(pred).label("mean_conf"),
            func.max(conf).filter(pred).label("max_conf"),
        )
        .where(*conds)
        .group_by(om.c.data_row_id)
        .subquery("agg_inner")
    )
    tp_c, fp_c = inner.c.tp, inner.c.fp
    fn_c = inner.c.num_gt - tp_c
    p = case((tp_c + fp_c > 0, cast(tp_c, Float) / (tp_c + fp_c)), else_=null())
    r = case((inner.c.num_gt > 0, cast(tp_c, Float) / inner.c.num_gt), else_=null())
    f1 = case(
        (
            and_(tp_c + fp_c > 0, inner.c.num_gt > 0, tp_c > 0),
            cast(2 * tp_c, Float) / (2 * tp_c + fp_c + fn_c),
        ),
        (and_(tp_c + fp_c > 0, inner.c.num_gt > 0), 0.0),
        (and_(tp_c + fp_c > 0, tp_c == 0), 0.0),
        (and_(inner.c.num_gt > 0, tp_c == 0), 0.0),
        else_=null(),
    )
    return select(
        inner.c.data_row_id,
        cast(inner.c.num_gt, Integer).label("num_gt"),
        cast(inner.c.num_pred, Integer).label("num_pred"),
        cast(tp_c, Integer).label("tp"),
        cast(fp_c, Integer).label("fp"),
        cast(fn_c, Integer).label("fn"),
        inner.c.present,
        p.label("precision"),
        r.label("recall"),
        f1.label("f1"),
        case((tp_c > 0, cast(inner.c.iou_sum, Float) / tp_c), else_=null()).label("mean_iou"),
        cast(inner.c.min_conf, Float).label("min_conf"),
        cast(inner.c.mean_conf, Float).label("mean_conf"),
        cast(inner.c.max_conf, Float).label("max_conf"),
    ).subquery("agg")


Source = tuple[FromClause, list[ColumnElement[bool]]]


def row_source(scope: RunScope, *, row_ids: Sequence[int] | None = None, name: str = "rm") -> Source:
    """Per-row metrics of the run (columns: data_row_id, split, has_gt, has_pred, METRIC_COLS) and the
    conditions that select the run's rows. At the run's thresholds this is the ``row_metrics`` table
    itself (no subquery to build per request; the planner sees the indexes directly)."""
    conds: list[ColumnElement[bool]] = [RM.c.model_run_id == scope.run_id]
    if row_ids is not None:
        conds.append(RM.c.data_row_id.in_(list(row_ids)))
    if not scope.custom:
        return RM, conds
    agg = _agg(scope, class_id=None, row_ids=row_ids)
    zero = literal(0)
    cols = [RM.c.data_row_id, RM.c.split, RM.c.has_gt]
    cols.append((func.coalesce(agg.c.num_pred, zero) > 0).label("has_pred"))
    for m in METRIC_COLS:
        if m in THRESHOLD_COLUMNS:
            src: Any = agg.c[m]
            if m in {"num_gt", "num_pred", "tp", "fp", "fn"}:
                src = func.coalesce(src, zero)
            cols.append(src.label(m))
        else:
            cols.append(RM.c[m])
    return (
        select(*cols)
        .select_from(RM.outerjoin(agg, agg.c.data_row_id == RM.c.data_row_id))
        .where(*conds)
        .subquery(name)
    ), []


def class_source(
    scope: RunScope, class_id: int, *, row_ids: Sequence[int] | None = None, alias: bool = False
) -> Source:
    """Per-row metrics restricted to one class (rows where the class is in GT or predictions); the table
    itself for the first class of a query, an alias for the others."""
    name = f"rc_{class_id}"
    if not scope.custom:
        t: Any = RCM.alias(name) if alias else RCM
        conds: list[ColumnElement[bool]] = [t.c.model_run_id == scope.run_id, t.c.class_id == class_id]
        if row_ids is not None:
            conds.append(t.c.data_row_id.in_(list(row_ids)))
        return t, conds
    agg = _agg(scope, class_id=class_id, row_ids=row_ids)
    cols = [agg.c.data_row_id, MRR.c.split]
    for m in METRIC_COLS:
        cols.append(agg.c[m].label(m) if m in THRESHOLD_COLUMNS else null().label(m))
    return (
        select(*cols)
        .select_from(
            agg.join(MRR, and_(MRR.c.model_run_id == scope.run_id, MRR.c.data_row_id == agg.c.data_row_id))
        )
        .where(agg.c.present > 0)
        .subquery(name)
    ), []
