"""Catalog reads: rows of the workspace across datasets, by ids, a run's filter or a slice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.repository.filters import ANN, DR, SM


async def catalog_page(
    session: AsyncSession,
    workspace_id: int,
    *,
    ids_subquery: Any | None,
    data_row_ids: list[int] | None,
    slice_id: int | None,
    annotation: str | None,
    dataset_ids: list[int] | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    q = select(
        DR.c.id,
        DR.c.global_key,
        DR.c.dataset_id,
        DR.c.width,
        DR.c.height,
        DR.c.object_key,
        DR.c.thumbnail_key,
        DR.c.metadata,
        DR.c.num_annotations,
    ).where(DR.c.workspace_id == workspace_id)
    if data_row_ids is not None:
        q = q.where(DR.c.id.in_(data_row_ids))
    if ids_subquery is not None:
        q = q.where(DR.c.id.in_(ids_subquery))
    if slice_id is not None:
        q = q.where(exists().where(SM.c.slice_id == slice_id, SM.c.data_row_id == DR.c.id))
    if annotation == "none":
        q = q.where(not_(exists().where(ANN.c.data_row_id == DR.c.id)))
    elif annotation == "any":
        q = q.where(exists().where(ANN.c.data_row_id == DR.c.id))
    if dataset_ids:
        q = q.where(DR.c.dataset_id.in_(dataset_ids))
    if after_id is not None:
        q = q.where(DR.c.id > after_id)
    return [dict(r) for r in (await session.execute(q.order_by(DR.c.id).limit(limit))).mappings()]
