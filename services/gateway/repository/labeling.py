"""Labeling projects, batches, their rows, and ground truth written back from labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import (
    Annotation,
    Batch,
    BatchRow,
    DataRow,
    LabelingProject,
    ModelRun,
    ModelRunRow,
    ObjectClass,
    Prediction,
)


async def create_project(session: AsyncSession, workspace_id: int, name: str, description: str) -> int | None:
    q = (
        insert(LabelingProject)
        .values(workspace_id=workspace_id, name=name, description=description)
        .on_conflict_do_nothing(index_elements=["workspace_id", "name"])
        .returning(LabelingProject.id)
    )
    return (await session.execute(q)).scalar_one_or_none()


async def get_project(session: AsyncSession, workspace_id: int, project_id: int) -> LabelingProject | None:
    q = select(LabelingProject).where(
        LabelingProject.id == project_id, LabelingProject.workspace_id == workspace_id
    )
    return (await session.execute(q)).scalar_one_or_none()


async def list_projects(session: AsyncSession, workspace_id: int) -> list[dict[str, Any]]:
    counts = (
        select(BatchRow.project_id, func.count().label("n")).group_by(BatchRow.project_id).subquery("counts")
    )
    q = (
        select(LabelingProject, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.project_id == LabelingProject.id)
        .where(LabelingProject.workspace_id == workspace_id)
        .order_by(LabelingProject.id)
    )
    return [{"project": p, "num_rows": int(n)} for p, n in (await session.execute(q)).all()]


async def insert_batch(
    session: AsyncSession,
    workspace_id: int,
    project_id: int,
    name: str,
    priority: int,
    idempotency_key: str,
    model_run_id: int | None,
) -> int | None:
    """The new batch's id, or None when the idempotency key was used already (nothing inserted)."""
    q = (
        insert(Batch)
        .values(
            workspace_id=workspace_id,
            project_id=project_id,
            name=name,
            priority=priority,
            idempotency_key=idempotency_key,
            model_run_id=model_run_id,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "idempotency_key"])
        .returning(Batch.id)
    )
    return (await session.execute(q)).scalar_one_or_none()


async def batch_by_key(session: AsyncSession, workspace_id: int, idempotency_key: str) -> Batch | None:
    q = select(Batch).where(Batch.workspace_id == workspace_id, Batch.idempotency_key == idempotency_key)
    return (await session.execute(q)).scalar_one_or_none()


async def get_batch(session: AsyncSession, workspace_id: int, batch_id: int) -> Batch | None:
    q = select(Batch).where(Batch.id == batch_id, Batch.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def list_batches(session: AsyncSession, workspace_id: int, project_id: int) -> list[Batch]:
    q = select(Batch).where(Batch.workspace_id == workspace_id, Batch.project_id == project_id)
    return list((await session.execute(q.order_by(Batch.id))).scalars())


async def add_batch_rows(
    session: AsyncSession, batch_id: int, project_id: int, ids: Sequence[int]
) -> list[int]:
    """Insert rows not yet in the project; returns the ids added (the rest were already there)."""
    if not ids:
        return []
    q = (
        insert(BatchRow)
        .values([{"batch_id": batch_id, "data_row_id": i, "project_id": project_id} for i in ids])
        .on_conflict_do_nothing(index_elements=["project_id", "data_row_id"])
        .returning(BatchRow.data_row_id)
    )
    return sorted(int(i) for i in (await session.execute(q)).scalars())


async def batch_row_ids(session: AsyncSession, batch_id: int) -> list[int]:
    q = select(BatchRow.data_row_id).where(BatchRow.batch_id == batch_id).order_by(BatchRow.data_row_id)
    return [int(i) for i in (await session.execute(q)).scalars()]


async def rows_in_workspace(session: AsyncSession, workspace_id: int, ids: Sequence[int]) -> set[int]:
    q = select(DataRow.id).where(DataRow.workspace_id == workspace_id, DataRow.id.in_(list(ids)))
    return {int(i) for i in (await session.execute(q)).scalars()}


async def export_rows(session: AsyncSession, batch_id: int) -> list[DataRow]:
    q = (
        select(DataRow)
        .join(BatchRow, BatchRow.data_row_id == DataRow.id)
        .where(BatchRow.batch_id == batch_id)
        .order_by(DataRow.id)
    )
    return list((await session.execute(q)).scalars())


async def predictions_for(
    session: AsyncSession, run_id: int, ids: Sequence[int], conf: float
) -> list[tuple[Prediction, str]]:
    q = (
        select(Prediction, ObjectClass.name)
        .join(ObjectClass, ObjectClass.id == Prediction.class_id)
        .where(
            Prediction.model_run_id == run_id,
            Prediction.data_row_id.in_(list(ids)),
            Prediction.confidence >= conf,
        )
        .order_by(Prediction.data_row_id, Prediction.confidence.desc())
    )
    return [(p, n) for p, n in (await session.execute(q)).all()]


async def classes(session: AsyncSession, workspace_id: int) -> list[ObjectClass]:
    q = select(ObjectClass).where(ObjectClass.workspace_id == workspace_id).order_by(ObjectClass.id)
    return list((await session.execute(q)).scalars())


async def get_run(session: AsyncSession, workspace_id: int, run_id: int) -> ModelRun | None:
    q = select(ModelRun).where(ModelRun.id == run_id, ModelRun.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def replace_annotations(
    session: AsyncSession, workspace_id: int, boxes_by_row: dict[int, list[dict[str, Any]]]
) -> int:
    """Replace the GT of each row with ``boxes`` (x, y, w, h, class_id, area, iscrowd); returns boxes written."""
    ids = list(boxes_by_row)
    if not ids:
        return 0
    await session.execute(delete(Annotation).where(Annotation.data_row_id.in_(ids)))
    values = [
        {"workspace_id": workspace_id, "data_row_id": rid, "source": "labeling", **b}
        for rid, boxes in boxes_by_row.items()
        for b in boxes
    ]
    if values:
        await session.execute(insert(Annotation).values(values))
    for rid, boxes in boxes_by_row.items():
        await session.execute(update(DataRow).where(DataRow.id == rid).values(num_annotations=len(boxes)))
    return len(values)


async def runs_of_rows(session: AsyncSession, workspace_id: int, ids: Sequence[int]) -> dict[int, list[int]]:
    q = (
        select(ModelRunRow.model_run_id, ModelRunRow.data_row_id)
        .join(ModelRun, ModelRun.id == ModelRunRow.model_run_id)
        .where(ModelRun.workspace_id == workspace_id, ModelRunRow.data_row_id.in_(list(ids)))
    )
    out: dict[int, list[int]] = {}
    for run_id, row_id in (await session.execute(q)).all():
        out.setdefault(int(run_id), []).append(int(row_id))
    return out
