"""Gallery reads: keyset pages, counts, row details with their objects, histograms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from services.gateway.repository.filters import DR, PRED, Compiled
from services.gateway.repository.sources import OM, RunScope, row_source
from shared.db.models import Annotation, ObjectClass
from shared.db.partitions import partition

ANN = Annotation.__table__
CLS = ObjectClass.__table__


@dataclass
class PageKey:
    """Where a page starts: after (value, id) in phase 0 (non-null values), after id in phase 1 (nulls)."""

    phase: int = 0
    value: float | None = None
    id: int | None = None


async def page_rows(
    session: AsyncSession,
    compiled: Compiled,
    sort_expr: Any | None,
    descending: bool,
    after: PageKey | None,
    limit: int,
    workspace_id: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows in order after ``after``: the row's data_rows and metric columns, its sort
    value ``v`` and keyset ``phase``, in one query (the data_rows join runs for the page's rows only)."""
    src = compiled.src
    row = src.c.data_row_id
    from_ = compiled.from_ if compiled.has_dr else compiled.from_.join(DR, DR.c.id == row)
    detail = [
        DR.c.global_key, DR.c.dataset_id, DR.c.width, DR.c.height, DR.c.object_key, DR.c.thumbnail_key,
        DR.c.metadata, *src.c,
    ]  # fmt: skip
    base = select(*detail).select_from(from_).where(*compiled.where, DR.c.workspace_id == workspace_id)

    async def run(q: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in (await session.execute(q)).mappings().all()]

    if sort_expr is None:
        q = base.add_columns(cast(null(), Float).label("v"), literal(0).label("phase"))
        if after is not None and after.id is not None:
            q = q.where(row < after.id if descending else row > after.id)
        return await run(q.order_by(row.desc() if descending else row.asc()).limit(limit))

    # Keyset on (sort value, row id) of the table that holds the sort column: for a class metric that is the
    # class table, so the whole key is an index condition of (run, class, metric, row).
    key_row = sort_expr.table.c.data_row_id if hasattr(sort_expr, "table") else row

    def phase0() -> Any:
        q = base.add_columns(sort_expr.label("v"), literal(0).label("phase")).where(sort_expr.is_not(None))
        if after is not None and after.phase == 0 and after.id is not None:
            key = tuple_(sort_expr, key_row)
            q = q.where(key < (after.value, after.id) if descending else key > (after.value, after.id))
        order = (sort_expr.desc(), key_row.desc()) if descending else (sort_expr.asc(), key_row.asc())
        return q.order_by(*order).limit(limit)

    def phase1() -> Any:
        q = base.add_columns(cast(null(), Float).label("v"), literal(1).label("phase")).where(
            sort_expr.is_(None)
        )
        if after is not None and after.phase == 1 and after.id is not None:
            q = q.where(key_row < after.id if descending else key_row > after.id)
        return q.order_by(key_row.desc() if descending else key_row.asc()).limit(limit)

    if after is not None and after.phase == 1:
        return await run(phase1())
    first = await run(phase0())
    if len(first) >= limit:
        return first
    return first + await run(phase1().limit(limit - len(first)))


async def count_rows(session: AsyncSession, compiled: Compiled) -> int:
    q = select(func.count()).select_from(compiled.from_).where(*compiled.where)
    return int((await session.execute(q)).scalar_one())


async def row_details(
    session: AsyncSession, scope: RunScope, ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """data_rows joined with the row metrics of ``scope`` for ``ids``."""
    if not ids:
        return {}
    src, conds = row_source(scope, row_ids=ids)
    metric_cols = [c for c in src.c if c.name not in {"data_row_id", "model_run_id"}]
    q = (
        select(
            DR.c.id,
            DR.c.global_key,
            DR.c.dataset_id,
            DR.c.width,
            DR.c.height,
            DR.c.object_key,
            DR.c.thumbnail_key,
            DR.c.metadata,
            *metric_cols,
        )
        .select_from(DR.join(src, src.c.data_row_id == DR.c.id))
        .where(*conds, DR.c.id.in_(list(ids)), DR.c.workspace_id == scope.workspace_id)
    )
    out: dict[int, dict[str, Any]] = {}
    for r in (await session.execute(q)).mappings():
        out[r["id"]] = dict(r)
    return out


async def row_objects(
    session: AsyncSession, scope: RunScope | None, ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """GT boxes of the rows and, for a run, its predictions at the confidence threshold, with match status.

    At the run's thresholds status/iou/error_type are the stored ones. At other thresholds a prediction is
    TP when its ``tp_mask`` has the IoU's bit, else FP; a GT is TP when its bit is set and its matched
    prediction passes the confidence threshold, else FN (error types stay those of the run's thresholds).
    """
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    id_list = list(ids)
    # Rows unpacked as tuples (in the statements' column order): a page has ~200 objects.
    if scope is None:
        result = await session.execute(_objects_query(None), {"ids": id_list})
        for oid, row_id, name, x, y, w, h, crowd in result.tuples().all():
            out[row_id].append(_obj("gt", oid, name, x, y, w, h, crowd, None, None, None, None, None))
        return out
    params = {"ids": id_list, "run_id": scope.run_id, "conf": scope.conf, "bit": scope.bit}
    result = await session.execute(_objects_query(scope.custom), params)
    for kind, oid, row_id, name, x, y, w, h, crowd, conf, status, iou, err, matched in result.tuples().all():
        out[row_id].append(_obj(kind, oid, name, x, y, w, h, crowd, conf, status, iou, err, matched))
    return out


@cache
def _objects_query(custom: bool | None) -> Any:
    """The statement of ``row_objects``, built once per kind (GT only; a run at its thresholds; a run at
    other thresholds) with bound parameters ``ids`` (an array: one SQL text for any page size, so
    psycopg prepares it), ``run_id``, ``conf`` and ``bit``: a page pays no statement building."""
    ids = bindparam("ids", type_=ARRAY(BigInteger))
    if custom is None:
        return (
            select(ANN.c.id, ANN.c.data_row_id, CLS.c.name, ANN.c.x, ANN.c.y, ANN.c.w, ANN.c.h, ANN.c.iscrowd)
            .select_from(ANN.join(CLS, CLS.c.id == ANN.c.class_id))
            .where(ANN.c.data_row_id == any_(ids))
            .order_by(ANN.c.id)
        )
    run_id = bindparam("run_id", type_=BigInteger)
    conf = bindparam("conf", type_=Float)
    bit = bindparam("bit", type_=Integer)
    # The two SELECTs of the UNION read object_matches without aliases (each has its own scope).
    om: Any = OM
    mp: Any = OM.alias("om_mp") if custom else None
    gt_status: Any = om.c.status
    if custom:
        gt_status = case(
            (om.c.status.is_(None), None),
            (and_(om.c.tp_mask.op("&")(bit) != 0, func.coalesce(mp.c.confidence, 1.0) >= conf), "TP"),
            else_="FN",
        )
    gt_from: Any = ANN.join(CLS, CLS.c.id == ANN.c.class_id).outerjoin(
        om, and_(om.c.model_run_id == run_id, om.c.kind == "gt", om.c.object_id == ANN.c.id)
    )
    if custom:
        gt_from = gt_from.outerjoin(
            mp,
            and_(mp.c.model_run_id == run_id, mp.c.kind == "pred", mp.c.object_id == om.c.matched_object_id),
        )
    gt_q = (
        select(
            literal("gt").label("kind"),
            ANN.c.id,
            ANN.c.data_row_id,
            CLS.c.name,
            ANN.c.x,
            ANN.c.y,
            ANN.c.w,
            ANN.c.h,
            ANN.c.iscrowd,
            cast(null(), Float).label("confidence"),
            gt_status.label("status"),
            om.c.iou,
            om.c.error_type,
            om.c.matched_object_id,
        )
        .select_from(gt_from)
        .where(ANN.c.data_row_id == any_(ids))
    )
    pom: Any = OM
    pred_status: Any = pom.c.status
    if custom:
        pred_status = case(
            (pom.c.status.is_(None), None), (pom.c.tp_mask.op("&")(bit) != 0, "TP"), else_="FP"
        )
    pred_q = (
        select(
            literal("pred").label("kind"),
            PRED.c.id,
            PRED.c.data_row_id,
            CLS.c.name,
            PRED.c.x,
            PRED.c.y,
            PRED.c.w,
            PRED.c.h,
            false().label("iscrowd"),
            PRED.c.confidence,
            pred_status.label("status"),
            pom.c.iou,
            pom.c.error_type,
            pom.c.matched_object_id,
        )
        .select_from(
            PRED.join(CLS, CLS.c.id == PRED.c.class_id).outerjoin(
                pom, and_(pom.c.model_run_id == run_id, pom.c.kind == "pred", pom.c.object_id == PRED.c.id)
            )
        )
        .where(PRED.c.model_run_id == run_id, PRED.c.data_row_id == any_(ids), PRED.c.confidence >= conf)
    )
    both = gt_q.union_all(pred_q).subquery("objs")
    return select(both).order_by(both.c.kind, func.coalesce(both.c.confidence, 0).desc(), both.c.id)


def _obj(
    kind: str,
    oid: int,
    class_name: str,
    x: float,
    y: float,
    w: float,
    h: float,
    iscrowd: bool | None,
    conf: float | None,
    status: str | None,
    iou: float | None,
    error_type: str | None,
    matched: int | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": oid,
        "class_name": class_name,
        "box": [x, y, w, h],
        "confidence": conf,
        "status": status,
        "iou": iou,
        "error_type": error_type,
        "matched_object_id": matched,
        "iscrowd": bool(iscrowd),
    }


async def value_range(session: AsyncSession, compiled: Compiled, expr: Any) -> tuple[Any, Any]:
    q = select(func.min(expr), func.max(expr)).select_from(compiled.from_).where(*compiled.where)
    r = (await session.execute(q)).one()
    return r[0], r[1]


async def histogram_counts(
    session: AsyncSession, compiled: Compiled, expr: Any, edges: list[float]
) -> tuple[list[int], int]:
    """Counts per bucket [e_i, e_i+1) (the last also holds e_n) and the NULL count, in one scan.

    ``width_bucket(v, ARRAY[edges])`` compares ``v`` with the same float8 edges the bucket filters carry
    (``gte``/``lt``), so a bucket's count is exactly the number of rows its filter returns.
    """
    from sqlalchemy import ARRAY, type_coerce

    arr = type_coerce(edges, ARRAY(Float))
    b = func.width_bucket(expr, arr)
    n = len(edges) - 1
    bucket = case((expr == edges[-1], n), else_=b).label("b")
    inner = select(bucket).select_from(compiled.from_).where(*compiled.where).subquery("hb")
    q = select(inner.c.b, func.count()).group_by(inner.c.b)
    counts = [0] * n
    nulls = 0
    for b_i, cnt in (await session.execute(q)).all():
        if b_i is None:
            nulls += cnt
        elif 1 <= b_i <= n:
            counts[b_i - 1] += cnt
    return counts, nulls


async def histogram_counts_by_range(
    session: AsyncSession,
    table: str,
    run_id: int,
    metric: str,
    *,
    integral: bool,
    edges: list[float],
    class_id: int | None,
    split: str | None,
) -> tuple[list[int], int]:
    """The same counts as ``histogram_counts``, as one ``count(*)`` per bucket over the bucket's own filter
    (``metric >= lo AND metric < hi``, the last ``<= hi``; then ``metric IS NULL``), in one UNION ALL.

    Read from the run's own partition of ``table`` (``row_metrics`` or ``row_class_metrics``), so no
    ``model_run_id`` condition is left for Postgres to check per entry: with the ``([class_id,] metric,
    data_row_id) INCLUDE (model_run_id, split)`` indexes (migration metrics04) each part is an index-only
    range scan, the split (if any) checked on the index entry. A partition that is not attached (a run
    still loading, or with no results) has no rows through the parent tables, so it counts nothing here.
    Integral edges of an integer column are compared as integers (the same rows as the float comparison
    of the bucket filters, and the index applies).
    """
    n = len(edges) - 1
    name = partition(table, run_id)
    attached = await session.scalar(
        select(func.count())
        .select_from(text("pg_inherits"))
        .where(literal_column("inhrelid") == func.to_regclass(name))
    )
    if not attached:
        return [0] * n, 0
    src = sql_table(
        name,
        sql_column("class_id", BigInteger),
        sql_column("split", String),
        sql_column(metric, Integer if integral else Float),
    )
    expr = src.c[metric]
    base: list[ColumnElement[bool]] = []
    if class_id is not None:
        base.append(src.c.class_id == class_id)
    if split is not None:
        base.append(src.c.split == split)
    vals: list[Any] = [int(e) if integral and float(e).is_integer() else e for e in edges]
    parts = [
        select(literal(i).label("b"), func.count().label("n"))
        .select_from(src)
        .where(*base, expr >= vals[i], expr <= vals[i + 1] if i == n - 1 else expr < vals[i + 1])
        for i in range(n)
    ]
    parts.append(
        select(literal(-1).label("b"), func.count().label("n")).select_from(src).where(*base, expr.is_(None))
    )
    counts = [0] * n
    nulls = 0
    for b_i, cnt in (await session.execute(union_all(*parts))).tuples():
        if b_i < 0:
            nulls = cnt
        else:
            counts[b_i] = cnt
    return counts, nulls
