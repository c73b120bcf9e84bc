"""Runs, classes and the per-class tables the metrics workers write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.repository.sources import RM, RunScope
from shared.db.models import ClassMetrics, DataRow, ModelRun, ModelRunRow, ObjectClass, Slice

CM = ClassMetrics.__table__


async def get_run(session: AsyncSession, workspace_id: int, run_id: int) -> ModelRun | None:
    q = select(ModelRun).where(ModelRun.id == run_id, ModelRun.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def list_runs(
    session: AsyncSession, workspace_id: int, limit: int, after_id: int | None
) -> list[ModelRun]:
    q = select(ModelRun).where(ModelRun.workspace_id == workspace_id)
    if after_id is not None:
        q = q.where(ModelRun.id > after_id)
    return list((await session.execute(q.order_by(ModelRun.id).limit(limit))).scalars())


async def run_row_counts(session: AsyncSession, run_id: int) -> dict[str, int]:
    q = (
        select(ModelRunRow.split, func.count())
        .where(ModelRunRow.model_run_id == run_id)
        .group_by(ModelRunRow.split)
    )
    return {s: int(n) for s, n in (await session.execute(q)).all()}


async def class_ids(session: AsyncSession, workspace_id: int) -> dict[str, int]:
    q = select(ObjectClass.name, ObjectClass.id).where(ObjectClass.workspace_id == workspace_id)
    return {n: int(i) for n, i in (await session.execute(q)).all()}


async def class_metrics(session: AsyncSession, run_id: int, split: str | None) -> list[dict[str, Any]]:
    q = select(CM).where(CM.c.model_run_id == run_id)
    if split is not None:
        q = q.where(CM.c.split == split)
    return [dict(r) for r in (await session.execute(q.order_by(CM.c.split, CM.c.class_id))).mappings()]


async def get_slice(session: AsyncSession, workspace_id: int, slice_id: int) -> Slice | None:
    q = select(Slice).where(Slice.id == slice_id, Slice.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def get_row(session: AsyncSession, workspace_id: int, row_id: int) -> DataRow | None:
    q = select(DataRow).where(DataRow.id == row_id, DataRow.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def row_in_run(session: AsyncSession, scope: RunScope, row_id: int) -> bool:
    q = select(RM.c.data_row_id).where(RM.c.model_run_id == scope.run_id, RM.c.data_row_id == row_id)
    return (await session.execute(q)).first() is not None
