"""Gallery use cases: resolve a query (run, thresholds, classes, similarity, slices), page it, assemble rows."""

from __future__ import annotations

import contextlib
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import domain
from services.gateway.domain import AttrCond, Filter, ParsedFilter, Principal, Sort
from services.gateway.repository import gallery as repo
from services.gateway.repository import runs as runs_repo
from services.gateway.repository.filters import Compiled, Resolved, compile_filter
from services.gateway.repository.sources import METRIC_COLS, RunScope
from services.gateway.schemas import GalleryQuery
from services.gateway.service.upstream import similar_row_ids
from services.gateway.state import GatewayState
from shared.db.models import ModelRun
from shared.errors import BadRequest, NotFound


async def load_run(session: AsyncSession, principal: Principal, run_id: int) -> ModelRun:
    run = await runs_repo.get_run(session, principal.workspace_id, run_id)
    if run is None:
        raise NotFound(f"model run {run_id} not found in this workspace", context={"model_run_id": run_id})
    return run


async def run_scope(
    session: AsyncSession,
    principal: Principal,
    run_id: int,
    iou: float | None = None,
    conf: float | None = None,
    *,
    classes: bool = True,
) -> RunScope:
    """The run (404 outside the workspace) at the query's thresholds; ``classes=False`` skips loading the
    workspace's class names when the query names none (one round trip less per gallery page)."""
    run = await load_run(session, principal, run_id)
    scope = RunScope(
        run_id=run.id,
        workspace_id=principal.workspace_id,
        run_iou=run.iou_threshold,
        run_conf=run.confidence_threshold,
        iou=run.iou_threshold if iou is None else iou,
        conf=run.confidence_threshold if conf is None else conf,
        class_ids=await runs_repo.class_ids(session, principal.workspace_id) if classes else {},
    )
    if scope.custom:
        domain.iou_bit(scope.iou)  # 400 naming iou_threshold when off the grid
    return scope


def slice_filter_to_parsed(saved: dict[str, Any]) -> ParsedFilter:
    """A slice's saved row filter (search service format) as gallery conditions."""
    conds: list[domain.Condition] = []
    anyc: list[domain.Condition] = []
    if saved.get("annotation") in {"none", "any"}:
        conds.append(domain.Condition(field="annotation", op="eq", value=saved["annotation"]))
    if saved.get("dataset_ids"):
        conds.append(domain.Condition(field="dataset_id", op="in", value=saved["dataset_ids"]))
    if saved.get("splits"):
        conds.append(domain.Condition(field="split", op="in", value=saved["splits"]))
    if saved.get("error_types"):
        conds.append(domain.Condition(field="error_type", op="in", value=saved["error_types"]))
    for k, v in (saved.get("metadata") or {}).items():
        conds.append(domain.Condition(field=f"metadata.{k}", op="eq", value=v))
    if saved.get("class_names"):
        anyc.append(domain.Condition(field="class_in_gt", op="in", value=saved["class_names"]))
        anyc.append(domain.Condition(field="class_in_pred", op="in", value=saved["class_names"]))
    return domain.parse_filter(domain.Filter(all=conds, any=anyc))


async def resolve(
    session: AsyncSession, state: GatewayState, principal: Principal, scope: RunScope, parsed: ParsedFilter
) -> Resolved:
    resolved = Resolved()
    for c in parsed.conditions():
        if not isinstance(c, AttrCond):
            continue
        if c.field == "compare":
            other_id = int(c.value["other_run_id"])
            other = await runs_repo.get_run(session, principal.workspace_id, other_id)
            if other is None:
                raise NotFound(
                    f"filter field 'compare': model run {other_id} not found in this workspace",
                    context={"field": "compare"},
                )
            resolved.other_runs[other_id] = (other.iou_threshold, other.confidence_threshold)
        elif c.field == "slice_id":
            for sid in c.value if isinstance(c.value, list) else [c.value]:
                sl = await runs_repo.get_slice(session, principal.workspace_id, int(sid))
                if sl is None:
                    raise NotFound(
                        f"filter field 'slice_id': slice {sid} not found in this workspace",
                        context={"field": "slice_id"},
                    )
                if sl.filter and not sl.similarity:
                    # a saved filter this run cannot evaluate: members only
                    with contextlib.suppress(BadRequest):
                        resolved.slice_filters[int(sid)] = slice_filter_to_parsed(sl.filter)
        elif c.field == "similar_to":
            anchors = [int(i) for i in c.value["data_row_ids"]]
            resolved.similar[id(c)] = await similar_row_ids(
                state.upstream["search"],
                principal.workspace_id,
                principal.scopes,
                anchors,
                c.value["score_threshold"],
                int(c.value["limit"]),
                scope.run_id,
            )
    return resolved


async def compile_query(
    session: AsyncSession,
    state: GatewayState,
    principal: Principal,
    scope: RunScope,
    flt: Filter | None,
    sort_class: str | None = None,
) -> Compiled:
    parsed = domain.parse_filter(flt)
    resolved = await resolve(session, state, principal, scope, parsed)
    return compile_filter(scope, parsed, resolved, sort_class=sort_class)


def sort_expression(scope: RunScope, compiled: Compiled, sort: Sort) -> Any | None:
    column = domain.sort_column(sort)
    if column is None:
        return None
    if sort.class_name:
        cid = scope.class_ids.get(sort.class_name)
        if cid is None:
            raise BadRequest(f"sort: unknown class {sort.class_name!r}", context={"field": "sort.class_name"})
        return compiled.classes[cid].c[column]
    return compiled.src.c[column]


_METRIC_VALUES = itemgetter(*METRIC_COLS)


def _metrics(d: dict[str, Any]) -> dict[str, Any]:
    """The page row's metric columns (every row source has all of METRIC_COLS)."""
    return dict(zip(METRIC_COLS, _METRIC_VALUES(d), strict=True))


async def gallery_page(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, q: GalleryQuery
) -> dict[str, Any]:
    parsed = domain.parse_filter(q.filter)
    needs_classes = bool(q.sort.class_name or parsed.class_names()) or any(
        isinstance(c, AttrCond) and c.field == "slice_id" for c in parsed.conditions()
    )
    scope = await run_scope(
        session, principal, run_id, q.iou_threshold, q.confidence_threshold, classes=needs_classes
    )
    resolved = await resolve(session, state, principal, scope, parsed)
    compiled = compile_filter(scope, parsed, resolved, sort_class=q.sort.class_name)
    sort_expr = sort_expression(scope, compiled, q.sort)
    sig = domain.query_signature(run_id, q.filter.model_dump(), q.sort.model_dump(), scope.iou, scope.conf)
    after = None
    if q.cursor:
        payload = domain.decode_cursor(q.cursor, sig)
        v = payload.get("v")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise BadRequest("cursor is malformed", context={"field": "cursor"})
        after = repo.PageKey(
            phase=1 if payload.get("p") == 1 else 0,
            value=None if v is None else domain.sql_number(v),
            id=int(payload["id"]),
        )
    limit = min(q.limit, state.settings.gateway.max_page_size)
    hits = await repo.page_rows(
        session, compiled, sort_expr, q.sort.order == "desc", after, limit + 1, principal.workspace_id
    )
    more = len(hits) > limit
    hits = hits[:limit]
    objects = await repo.row_objects(session, scope, [h["data_row_id"] for h in hits])
    rows = []
    for d in hits:
        row_id = d["data_row_id"]
        value = d["v"]
        rows.append(
            {
                "data_row_id": row_id,
                "global_key": d["global_key"],
                "dataset_id": d["dataset_id"],
                "split": d.get("split"),
                "width": d["width"],
                "height": d["height"],
                "thumbnail_url": state.presign(d["thumbnail_key"] or d["object_key"]),
                "image_url": state.presign(d["object_key"]),
                "metadata": d["metadata"] or {},
                "metrics": _metrics(d),
                "sort_value": value,
                "objects": objects.get(row_id, []),
            }
        )
    next_cursor = None
    if more and hits:
        last_id, last_v, last_phase = hits[-1]["data_row_id"], hits[-1]["v"], hits[-1]["phase"]
        next_cursor = domain.encode_cursor({"sig": sig, "p": last_phase, "v": last_v, "id": last_id})
    total = await repo.count_rows(session, compiled) if q.include_total else None
    return {
        "rows": rows,
        "next_cursor": next_cursor,
        "total": total,
        "iou_threshold": scope.iou,
        "confidence_threshold": scope.conf,
    }


async def count_filter(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, flt: Filter
) -> int:
    scope = await run_scope(session, principal, run_id)
    compiled = await compile_query(session, state, principal, scope, flt)
    return await repo.count_rows(session, compiled)


async def selection_ids_subquery(
    session: AsyncSession, state: GatewayState, principal: Principal, run_id: int, flt: Filter
) -> Any:
    """SELECT data_row_id of a run's rows matching ``flt`` (for the catalog and batches)."""
    from sqlalchemy import select

    scope = await run_scope(session, principal, run_id)
    compiled = await compile_query(session, state, principal, scope, flt)
    return select(compiled.src.c.data_row_id).select_from(compiled.from_).where(*compiled.where)
