"""Gallery filters -> SQL over a run's row-metric source (see services/gateway/domain.py for the language)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import ColumnElement, FromClause, Subquery

from services.gateway.domain import AttrCond, MetricCond, ParsedFilter
from services.gateway.repository.sources import OM, RunScope, class_source, kept_pred, row_source
from shared.db.models import Annotation, DataRow, Prediction, SliceMember
from shared.errors import BadRequest

ANN = Annotation.__table__
PRED = Prediction.__table__
DR = DataRow.__table__
SM = SliceMember.__table__


@dataclass
class Resolved:
    """Values the service looked up before compiling: ids of similar rows, the other run of a compare."""

    similar: dict[int, list[int]] = field(default_factory=dict)  # id(AttrCond) -> row ids
    other_runs: dict[int, tuple[float, float]] = field(default_factory=dict)  # run id -> (iou, conf)
    slice_filters: dict[int, ParsedFilter] = field(default_factory=dict)  # slice id -> its saved filter


@dataclass
class Compiled:
    src: FromClause
    from_: FromClause
    where: list[ColumnElement[bool]]
    classes: dict[int, FromClause]
    has_dr: bool = False  # data_rows is joined (metadata / dataset filters)


def _class_id(scope: RunScope, name: str, field_name: str) -> int:
    try:
        return scope.class_ids[name]
    except KeyError:
        raise BadRequest(
            f"filter field {field_name!r}: unknown class {name!r}", context={"field": field_name}
        ) from None


def _op(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "lt":
        return expr < value  # type: ignore[no-any-return]
    if op == "lte":
        return expr <= value  # type: ignore[no-any-return]
    if op == "gt":
        return expr > value  # type: ignore[no-any-return]
    if op == "gte":
        return expr >= value  # type: ignore[no-any-return]
    if op == "eq":
        return expr == value  # type: ignore[no-any-return]
    if op == "ne":
        return expr != value  # type: ignore[no-any-return]
    if op == "between":
        return expr.between(value[0], value[1])  # type: ignore[no-any-return]
    if op == "in":
        return expr.in_(value)  # type: ignore[no-any-return]
    if op == "is_null":
        return expr.is_(None)  # type: ignore[no-any-return]
    if op == "not_null":
        return expr.is_not(None)  # type: ignore[no-any-return]
    raise BadRequest(f"unknown op {op!r}")


def _ids(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def compile_filter(
    scope: RunScope,
    parsed: ParsedFilter,
    resolved: Resolved,
    *,
    sort_class: str | None = None,
) -> Compiled:
    """FROM + WHERE for the rows of ``scope``'s run that match ``parsed``."""
    src, base_where = row_source(scope)
    classes: dict[int, FromClause] = {}
    names = {c.class_name for c in parsed.conditions() if isinstance(c, MetricCond) and c.class_name}
    if sort_class:
        names.add(sort_class)
    for n in sorted(n for n in names if n):
        cid = _class_id(scope, n, "class_name")
        classes[cid], conds = class_source(scope, cid, alias=bool(classes))
        base_where.extend(conds)
    from_: FromClause = src
    for sub in classes.values():
        from_ = from_.join(sub, sub.c.data_row_id == src.c.data_row_id)
    every = parsed.conditions() + [x for f in resolved.slice_filters.values() for x in f.conditions()]
    has_dr = any(isinstance(c, AttrCond) and c.field in {"metadata", "dataset_id"} for c in every)
    if has_dr:
        from_ = from_.join(DR, DR.c.id == src.c.data_row_id)
    ctx = _Ctx(scope, src, classes, resolved, depth=0)
    where = [*base_where, *(ctx.cond(c) for c in parsed.all)]
    if parsed.any:
        where.append(or_(*(ctx.cond(c) for c in parsed.any)))
    return Compiled(src=src, from_=from_, where=where, classes=classes, has_dr=has_dr)


@dataclass
class _Ctx:
    scope: RunScope
    src: FromClause
    classes: dict[int, FromClause]
    resolved: Resolved
    depth: int

    @property
    def row(self) -> Any:
        return self.src.c.data_row_id

    def cond(self, c: MetricCond | AttrCond) -> ColumnElement[bool]:
        if isinstance(c, MetricCond):
            if c.class_name:
                sub = self.classes[_class_id(self.scope, c.class_name, "class_name")]
                return _op(sub.c[c.column], c.op, c.value)
            return _op(self.src.c[c.column], c.op, c.value)
        return getattr(self, f"_{c.field}")(c)  # type: ignore[no-any-return]

    # ---- attributes
    def _split(self, c: AttrCond) -> ColumnElement[bool]:
        return _op(self.src.c.split, c.op, c.value)

    def _data_row_id(self, c: AttrCond) -> ColumnElement[bool]:
        return _op(self.row, "in" if c.op == "eq" else c.op, _ids(c.value) if c.op != "ne" else c.value)

    def _dataset_id(self, c: AttrCond) -> ColumnElement[bool]:
        return _op(DR.c.dataset_id, c.op, c.value)

    def _class_in_gt(self, c: AttrCond) -> ColumnElement[bool]:
        ids = [_class_id(self.scope, n, c.field) for n in _ids(c.value)]
        return exists().where(ANN.c.data_row_id == self.row, ANN.c.class_id.in_(ids))

    def _class_in_pred(self, c: AttrCond) -> ColumnElement[bool]:
        ids = [_class_id(self.scope, n, c.field) for n in _ids(c.value)]
        return exists().where(
            PRED.c.model_run_id == self.scope.run_id,
            PRED.c.data_row_id == self.row,
            PRED.c.class_id.in_(ids),
            PRED.c.confidence >= self.scope.conf,
        )

    def _annotation(self, c: AttrCond) -> ColumnElement[bool]:
        has = exists().where(ANN.c.data_row_id == self.row)
        return not_(has) if c.value == "none" else has

    def _metadata(self, c: AttrCond) -> ColumnElement[bool]:
        md = DR.c.metadata
        key = c.key or ""
        if c.op == "is_null":
            return not_(md.has_key(key))
        if c.op == "not_null":
            return md.has_key(key)  # type: ignore[no-any-return]
        if c.op in {"eq", "ne", "in"}:

            def contains(v: Any) -> ColumnElement[bool]:
                return md.contains(type_coerce({key: v}, JSONB))  # type: ignore[no-any-return]

            if c.op == "eq":
                return contains(c.value)
            if c.op == "ne":
                return not_(contains(c.value))
            return or_(*(contains(v) for v in c.value))
        num = case((func.jsonb_typeof(md[key]) == "number", md[key].astext.cast(Float)), else_=None)
        return _op(num, c.op, c.value)

    def _error_type(self, c: AttrCond) -> ColumnElement[bool]:
        om = OM.alias("om_err")
        conds = [om.c.model_run_id == self.scope.run_id, om.c.data_row_id == self.row]
        # errors are at the run's thresholds: predictions under its confidence do not show.
        conds.append(or_(om.c.kind == "gt", kept_pred(om, self.scope.run_conf)))
        if c.class_name:
            conds.append(om.c.class_id == _class_id(self.scope, c.class_name, c.field))
        if c.min_confidence is not None:
            conds.append(and_(om.c.kind == "pred", om.c.confidence >= c.min_confidence))
        if c.op in {"is_null", "ne"}:
            conds.append(om.c.error_type.is_not(None) if c.op == "is_null" else om.c.error_type == c.value)
            return not_(exists().where(*conds))
        if c.op == "not_null":
            conds.append(om.c.error_type.is_not(None))
        else:
            conds.append(om.c.error_type.in_(_ids(c.value)))
        return exists().where(*conds)

    def _slice_id(self, c: AttrCond) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        for sid in _ids(c.value):
            member: ColumnElement[bool] = exists().where(SM.c.slice_id == sid, SM.c.data_row_id == self.row)
            saved = self.resolved.slice_filters.get(sid)
            if saved is not None and saved.conditions() and self.depth < 2:
                sub = _Ctx(self.scope, self.src, self.classes, self.resolved, self.depth + 1)
                if all(not (isinstance(x, MetricCond) and x.class_name) for x in saved.conditions()):
                    cond = and_(true(), *(sub.cond(x) for x in saved.all))
                    if saved.any:
                        cond = and_(cond, or_(*(sub.cond(x) for x in saved.any)))
                    member = or_(member, cond)
            parts.append(member)
        return or_(*parts)

    def _similar_to(self, c: AttrCond) -> ColumnElement[bool]:
        ids = self.resolved.similar.get(id(c), [])
        return self.row.in_(ids) if ids else false()

    def _compare(self, c: AttrCond) -> ColumnElement[bool]:
        other = int(c.value["other_run_id"])
        _, other_conf = self.resolved.other_runs[other]
        return compare_condition(self.scope, other, other_conf, c.value["status"], self.row)

    def _confusion(self, c: AttrCond) -> ColumnElement[bool]:
        gt = c.value["gt_class"]
        pred = c.value["pred_class"]
        gt_id = _class_id(self.scope, gt, c.field) if gt is not None else 0
        pred_id = _class_id(self.scope, pred, c.field) if pred is not None else 0
        pairs = confusion_pairs(self.scope)
        return exists().where(
            pairs.c.data_row_id == self.row, pairs.c.gt_class == gt_id, pairs.c.pred_class == pred_id
        )


# ---------------------------------------------------------------------------------------------- confusion


def confusion_pairs(scope: RunScope, *, name: str = "pairs") -> Subquery:
    """(data_row_id, gt_class, pred_class) per object pair at the run's thresholds; class 0 = none.

    TP prediction -> (c, c); FP prediction with a ``cls`` error and a matched GT -> (gt class, pred class);
    other FP -> (0, pred class); FN GT not claimed by a ``cls`` error -> (gt class, 0).
    """
    run, conf = scope.run_id, scope.run_conf
    p = OM.alias("cp_p")
    g = OM.alias("cp_g")
    kept = kept_pred(p, conf)
    is_cls = and_(p.c.error_type == "cls", p.c.matched_object_id.is_not(None))
    tp = select(p.c.data_row_id, p.c.class_id.label("gt_class"), p.c.class_id.label("pred_class")).where(
        p.c.model_run_id == run, kept, p.c.status == "TP"
    )
    cls = (
        select(p.c.data_row_id, g.c.class_id.label("gt_class"), p.c.class_id.label("pred_class"))
        .select_from(
            p.join(
                g,
                and_(g.c.model_run_id == run, g.c.kind == "gt", g.c.object_id == p.c.matched_object_id),
            )
        )
        .where(p.c.model_run_id == run, kept, p.c.status == "FP", is_cls)
    )
    p2 = OM.alias("cp_p2")
    bkg = select(p2.c.data_row_id, literal(0).label("gt_class"), p2.c.class_id.label("pred_class")).where(
        p2.c.model_run_id == run,
        kept_pred(p2, conf),
        p2.c.status == "FP",
        not_(and_(p2.c.error_type == "cls", p2.c.matched_object_id.is_not(None))),
    )
    g2 = OM.alias("cp_g2")
    p3 = OM.alias("cp_p3")
    claimed = exists().where(
        p3.c.model_run_id == run,
        kept_pred(p3, conf),
        p3.c.status == "FP",
        p3.c.error_type == "cls",
        p3.c.matched_object_id == g2.c.object_id,
    )
    fn = select(g2.c.data_row_id, g2.c.class_id.label("gt_class"), literal(0).label("pred_class")).where(
        g2.c.model_run_id == run,
        g2.c.kind == "gt",
        g2.c.status == "FN",
        not_(g2.c.ignored),
        not_(func.coalesce(g2.c.iscrowd, false())),
        not_(claimed),
    )
    return tp.union_all(cls, bkg, fn).subquery(name)


# ---------------------------------------------------------------------------------------------- compare


def _box_iou(a: Any, b: Any) -> Any:
    iw = func.greatest(0, func.least(a.c.x + a.c.w, b.c.x + b.c.w) - func.greatest(a.c.x, b.c.x))
    ih = func.greatest(0, func.least(a.c.y + a.c.h, b.c.y + b.c.h) - func.greatest(a.c.y, b.c.y))
    inter = iw * ih
    union = a.c.w * a.c.h + b.c.w * b.c.h - inter
    return inter / func.nullif(union, 0)  # type: ignore[no-any-return]


def compare_condition(
    scope: RunScope, other_run: int, other_conf: float, status: str, row: Any
) -> ColumnElement[bool]:
    """Rows with at least one object in ``status`` between ``other_run`` (before) and this run (after).

    GT boxes are the same objects in both runs: fixed = FN -> TP, regressed = TP -> FN, still_wrong =
    FN -> FN. False positives are paired across runs by class and box IoU >= 0.5: an FP here without a
    partner there is a new_error, with one it is still_wrong, and an FP there without a partner here is
    fixed.
    """
    run, conf = scope.run_id, scope.run_conf
    a = OM.alias("cmp_a")  # this run
    b = OM.alias("cmp_b")  # other run
    gt_pairs = {"fixed": ("FN", "TP"), "regressed": ("TP", "FN"), "still_wrong": ("FN", "FN")}
    parts: list[ColumnElement[bool]] = []
    if status in gt_pairs:
        before, after = gt_pairs[status]
        parts.append(
            exists()
            .select_from(
                a.join(
                    b, and_(b.c.model_run_id == other_run, b.c.kind == "gt", b.c.object_id == a.c.object_id)
                )
            )
            .where(
                a.c.model_run_id == run,
                a.c.kind == "gt",
                a.c.data_row_id == row,
                not_(a.c.ignored),
                a.c.status == after,
                b.c.status == before,
            )
        )

    def fp_exists(this_run: int, this_conf: float, that_run: int, that_conf: float, partner: bool) -> Any:
        x = OM.alias("fp_x")
        y = OM.alias("fp_y")
        px = PRED.alias("px")
        py = PRED.alias("py")
        has_partner = (
            exists()
            .select_from(y.join(py, and_(py.c.model_run_id == that_run, py.c.id == y.c.object_id)))
            .where(
                y.c.model_run_id == that_run,
                y.c.data_row_id == row,
                kept_pred(y, that_conf),
                y.c.status == "FP",
                y.c.class_id == x.c.class_id,
                _box_iou(px, py) >= 0.5,
            )
        )
        return (
            exists()
            .select_from(x.join(px, and_(px.c.model_run_id == this_run, px.c.id == x.c.object_id)))
            .where(
                x.c.model_run_id == this_run,
                x.c.data_row_id == row,
                kept_pred(x, this_conf),
                x.c.status == "FP",
                has_partner if partner else not_(has_partner),
            )
        )

    if status == "new_error":
        parts.append(fp_exists(run, conf, other_run, other_conf, partner=False))
    elif status == "still_wrong":
        parts.append(fp_exists(run, conf, other_run, other_conf, partner=True))
    elif status == "fixed":
        parts.append(fp_exists(other_run, other_conf, run, conf, partner=False))
    return or_(*parts)


__all__ = ["Compiled", "Resolved", "compare_condition", "compile_filter", "confusion_pairs", "row_source"]
