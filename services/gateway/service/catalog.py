"""Catalog use cases: resolve a selection (ids, a run's filter, a slice) into rows across datasets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import domain
from services.gateway.domain import Principal
from services.gateway.repository import catalog as repo
from services.gateway.repository import labeling as labeling_repo
from services.gateway.repository import runs as runs_repo
from services.gateway.repository.filters import SM
from services.gateway.schemas import CatalogQuery, Selection
from services.gateway.service.gallery import selection_ids_subquery
from services.gateway.state import GatewayState
from shared.errors import BadRequest, NotFound


async def check_slice(session: AsyncSession, principal: Principal, slice_id: int) -> None:
    if await runs_repo.get_slice(session, principal.workspace_id, slice_id) is None:
        raise NotFound(f"slice {slice_id} not found in this workspace", context={"field": "slice_id"})


async def check_rows(session: AsyncSession, principal: Principal, ids: list[int]) -> None:
    found = await labeling_repo.rows_in_workspace(session, principal.workspace_id, ids)
    missing = sorted(set(ids) - found)
    if missing:
        raise NotFound(
            f"data rows not found in this workspace: {missing[:20]}",
            context={"field": "data_row_ids", "missing": missing[:100]},
        )


async def selection_ids(
    session: AsyncSession, state: GatewayState, principal: Principal, sel: Selection, max_rows: int
) -> list[int]:
    """The rows of a selection (ordered), at most ``max_rows`` (400 beyond: nothing is half-done)."""
    if sel.data_row_ids is not None:
        ids = sorted(set(sel.data_row_ids))
        await check_rows(session, principal, ids)
    elif sel.slice_id is not None:
        await check_slice(session, principal, sel.slice_id)
        q = select(SM.c.data_row_id).where(SM.c.slice_id == sel.slice_id).order_by(SM.c.data_row_id)
        ids = [int(i) for i in (await session.execute(q.limit(max_rows + 1))).scalars()]
    else:
        assert sel.filter is not None and sel.model_run_id is not None
        sub = await selection_ids_subquery(session, state, principal, sel.model_run_id, sel.filter)
        ids = sorted(int(i) for i in (await session.execute(sub.limit(max_rows + 1))).scalars())
    if len(ids) > max_rows:
        raise BadRequest(
            f"the selection holds more than {max_rows} rows; narrow it or raise max_rows",
            context={"field": "selection"},
        )
    return ids


async def catalog_query(
    session: AsyncSession, state: GatewayState, principal: Principal, q: CatalogQuery
) -> dict[str, Any]:
    sig = domain.query_signature("catalog", q.model_dump(exclude={"cursor", "limit"}))
    after = domain.decode_cursor(q.cursor, sig)["id"] if q.cursor else None
    ids_sub = None
    data_row_ids = None
    slice_id = None
    sel = q.selection
    if sel is not None:
        if sel.data_row_ids is not None:
            data_row_ids = sel.data_row_ids
        elif sel.slice_id is not None:
            await check_slice(session, principal, sel.slice_id)
            slice_id = sel.slice_id
        else:
            assert sel.filter is not None and sel.model_run_id is not None
            ids_sub = await selection_ids_subquery(session, state, principal, sel.model_run_id, sel.filter)
    rows = await repo.catalog_page(
        session,
        principal.workspace_id,
        ids_subquery=ids_sub,
        data_row_ids=data_row_ids,
        slice_id=slice_id,
        annotation=q.annotation,
        dataset_ids=q.dataset_ids,
        after_id=after,
        limit=q.limit + 1,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    out = [
        {
            "data_row_id": r["id"],
            "global_key": r["global_key"],
            "dataset_id": r["dataset_id"],
            "width": r["width"],
            "height": r["height"],
            "num_annotations": r["num_annotations"],
            "thumbnail_url": state.presign(r["thumbnail_key"] or r["object_key"]),
            "metadata": r["metadata"] or {},
        }
        for r in rows
    ]
    cursor = domain.encode_cursor({"sig": sig, "id": rows[-1]["id"]}) if more and rows else None
    return {"rows": out, "next_cursor": cursor}
