"""Drill-down use cases: per-class tables, histograms and confusion cells that link to gallery filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import domain
from services.gateway.domain import Filter, Principal
from services.gateway.repository import gallery as repo
from services.gateway.repository import runs as runs_repo
from services.gateway.repository.filters import Compiled, confusion_pairs
from services.gateway.repository.sources import RunScope, class_source
from services.gateway.service.gallery import compile_query, load_run, run_scope
from services.gateway.state import GatewayState
from shared.errors import BadRequest


def _split_conditions(split: str | None) -> list[dict[str, Any]]:
    return [{"field": "split", "op": "eq", "value": split}] if split else []


async def class_table(
    session: AsyncSession, principal: Principal, run_id: int, split: str | None
) -> list[dict[str, Any]]:
    await load_run(session, principal, run_id)
    names = {v: k for k, v in (await runs_repo.class_ids(session, principal.workspace_id)).items()}
    rows = await runs_repo.class_metrics(session, run_id, split)
    for r in rows:
        r["class_name"] = names.get(r["class_id"]) if r["class_id"] else None
    return rows


def class_only(scope: RunScope, class_id: int, split: str | None) -> Compiled:
    table, conds = class_source(scope, class_id)
    if split:
        conds.append(table.c.split == split)
    return Compiled(src=table, from_=table, where=conds, classes={class_id: table})


async def histogram(
    session: AsyncSession,
    state: GatewayState,
    principal: Principal,
    run_id: int,
    metric: str,
    class_name: str | None,
    split: str | None,
    bins: int,
    iou: float | None = None,
    conf: float | None = None,
) -> dict[str, Any]:
    if metric not in domain.METRIC_COLUMNS:
        raise BadRequest(f"metric {metric!r}: unknown metric", context={"field": "metric"})
    column = domain.METRIC_COLUMNS[metric]
    scope = await run_scope(session, principal, run_id, iou, conf)
    base = _split_conditions(split)
    flt = Filter.model_validate({"all": base})
    if class_name is not None and class_name not in scope.class_ids:
        raise BadRequest(f"class_name: unknown class {class_name!r}", context={"field": "class_name"})
    if class_name is not None:
        # A class histogram reads the (run, class) rows alone (they carry the split): the same rows the
        # gallery's class-restricted filter returns, without a join per row.
        compiled = class_only(scope, scope.class_ids[class_name], split)
        expr = compiled.src.c[column]
    else:
        compiled = await compile_query(session, state, principal, scope, flt)
        expr = compiled.src.c[column]
    vmin = vmax = None
    if column not in domain.RATE_COLUMNS:
        vmin, vmax = await repo.value_range(session, compiled, expr)
    edges = domain.histogram_edges(column, bins, vmin, vmax)
    if column in domain.INDEXED_METRICS and not scope.custom:
        # The run's partition and its ([class,] metric) index, which covers the split (migration
        # metrics04): index-only range counts per bucket.
        counts, nulls = await repo.histogram_counts_by_range(
            session,
            "row_metrics" if class_name is None else "row_class_metrics",
            run_id,
            column,
            integral=isinstance(expr.type, Integer),
            edges=edges,
            class_id=None if class_name is None else scope.class_ids[class_name],
            split=split,
        )
    else:
        counts, nulls = await repo.histogram_counts(session, compiled, expr, edges)
    buckets = []
    n = len(edges) - 1
    for i in range(n):
        lo, hi = edges[i], edges[i + 1]
        conds = base + domain.bucket_conditions(metric, class_name, lo, hi, last=i == n - 1)
        buckets.append({"lo": lo, "hi": hi, "count": counts[i], "filter": {"all": conds}})
    if nulls:
        conds = base + domain.bucket_conditions(metric, class_name, None, None, last=False)
        buckets.append({"lo": None, "hi": None, "count": nulls, "filter": {"all": conds}})
    return {
        "metric": metric,
        "class_name": class_name,
        "split": split,
        "buckets": buckets,
        "iou_threshold": scope.iou,
        "confidence_threshold": scope.conf,
    }


async def confusion(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, split: str | None
) -> dict[str, Any]:
    scope = await run_scope(session, principal, run_id)
    names = {v: k for k, v in scope.class_ids.items()}
    base = _split_conditions(split)
    compiled = await compile_query(session, state, principal, scope, Filter.model_validate({"all": base}))
    pairs = confusion_pairs(scope)
    src = compiled.src
    q = (
        select(
            pairs.c.gt_class,
            pairs.c.pred_class,
            func.count().label("n"),
            func.count(func.distinct(pairs.c.data_row_id)).label("rows"),
        )
        .select_from(compiled.from_.join(pairs, pairs.c.data_row_id == src.c.data_row_id))
        .where(*compiled.where)
        .group_by(pairs.c.gt_class, pairs.c.pred_class)
        .order_by(pairs.c.gt_class, pairs.c.pred_class)
    )
    cells = []
    used: set[str] = set()
    for gt, pred, n, rows in (await session.execute(q)).all():
        gname = names.get(gt) if gt else None
        pname = names.get(pred) if pred else None
        used.update(x for x in (gname, pname) if x)
        value = {"gt_class": gname, "pred_class": pname}
        cells.append(
            {
                "gt_class": gname,
                "pred_class": pname,
                "count": int(n),
                "rows": int(rows),
                "filter": {"all": [*base, {"field": "confusion", "op": "eq", "value": value}]},
            }
        )
    return {"split": split, "classes": sorted(used), "cells": cells}


async def curves(
    session: AsyncSession, principal: Principal, run_id: int, class_name: str | None, split: str | None
) -> list[dict[str, Any]]:
    rows = await class_table(session, principal, run_id, split or "all")
    if class_name is not None:
        if class_name not in {r["class_name"] for r in rows} and class_name not in (
            await runs_repo.class_ids(session, principal.workspace_id)
        ):
            raise BadRequest(f"class_name: unknown class {class_name!r}", context={"field": "class_name"})
        rows = [r for r in rows if r["class_name"] == class_name]
    return [
        {
            "split": r["split"],
            "class_name": r["class_name"],
            "pr_curve": r["pr_curve"],
            "f1_curve": r["f1_curve"],
            "best_conf_threshold": r["best_conf_threshold"],
            "best_f1": r["best_f1"],
        }
        for r in rows
    ]


async def tide(
    session: AsyncSession, principal: Principal, run_id: int, split: str | None
) -> list[dict[str, Any]]:
    rows = await class_table(session, principal, run_id, split or "all")
    return [
        {"split": r["split"], "class_name": r["class_name"], "ap": r["ap"], "tide": r["tide"]} for r in rows
    ]


def auto_slice_definitions(run_conf: float) -> list[dict[str, Any]]:
    """Labelbox-style error slices of a run, each a gallery filter plus the sort that surfaces the worst."""
    low_conf = round(min(1.0, run_conf + 0.15), 4)
    return [
        {
            "key": "false_positives",
            "name": "False positives",
            "description": "Rows with at least one FP.",
            "filter": {"all": [{"field": "fp", "op": "gt", "value": 0}]},
            "sort": {"field": "fp", "order": "desc"},
        },
        {
            "key": "false_negatives",
            "name": "False negatives",
            "description": "Rows with at least one FN.",
            "filter": {"all": [{"field": "fn", "op": "gt", "value": 0}]},
            "sort": {"field": "fn", "order": "desc"},
        },
        {
            "key": "low_precision",
            "name": "Low precision",
            "description": "Precision below 0.5.",
            "filter": {"all": [{"field": "precision", "op": "lt", "value": 0.5}]},
            "sort": {"field": "precision", "order": "asc"},
        },
        {
            "key": "low_recall",
            "name": "Low recall",
            "description": "Recall below 0.5.",
            "filter": {"all": [{"field": "recall", "op": "lt", "value": 0.5}]},
            "sort": {"field": "recall", "order": "asc"},
        },
        {
            "key": "low_f1",
            "name": "Low F1",
            "description": "F1 below 0.5.",
            "filter": {"all": [{"field": "f1", "op": "lt", "value": 0.5}]},
            "sort": {"field": "f1", "order": "asc"},
        },
        {
            "key": "low_confidence",
            "name": "Low confidence",
            "description": f"Mean prediction confidence below {low_conf} (uncertainty sampling).",
            "filter": {"all": [{"field": "confidence", "op": "lt", "value": low_conf}]},
            "sort": {"field": "confidence", "order": "asc"},
        },
        {
            "key": "candidate_mislabels",
            "name": "Candidate mislabels",
            "description": "Confident (>= 0.8) predictions that disagree with the GT: a wrong class on a"
            " matched box, or a box where the GT has none (label may be wrong or missing).",
            "filter": {
                "all": [{"field": "error_type", "op": "in", "value": ["cls", "bkg"], "min_confidence": 0.8}]
            },
            "sort": {"field": "max_confidence", "order": "desc"},
        },
    ]


async def auto_slices(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, split: str | None
) -> list[dict[str, Any]]:
    run = await load_run(session, principal, run_id)
    scope = await run_scope(session, principal, run_id)
    out = []
    for d in auto_slice_definitions(run.confidence_threshold):
        d["filter"]["all"] = _split_conditions(split) + d["filter"]["all"]
        compiled = await compile_query(session, state, principal, scope, Filter.model_validate(d["filter"]))
        d["count"] = await repo.count_rows(session, compiled)
        out.append(d)
    return out


async def compare_summary(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, other_run_id: int
) -> dict[str, Any]:
    scope = await run_scope(session, principal, run_id)
    counts: dict[str, int] = {}
    filters: dict[str, dict[str, Any]] = {}
    for status in domain.COMPARE_STATUSES:
        f = {
            "all": [
                {"field": "compare", "op": "eq", "value": {"other_run_id": other_run_id, "status": status}}
            ]
        }
        compiled = await compile_query(session, state, principal, scope, Filter.model_validate(f))
        counts[status] = await repo.count_rows(session, compiled)
        filters[status] = f
    return {"run_id": run_id, "other_run_id": other_run_id, "counts": counts, "filters": filters}
