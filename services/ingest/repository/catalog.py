"""Workspaces, datasets, classes and model runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared.db.models import DataRow, Dataset, ModelRun, ObjectClass, Workspace


def workspace_exists(session: Session, workspace_id: int) -> bool:
    return session.get(Workspace, workspace_id) is not None


def create_dataset(session: Session, workspace_id: int, name: str, description: str) -> Dataset:
    ds = Dataset(workspace_id=workspace_id, name=name, description=description)
    session.add(ds)
    session.flush()
    return ds


def dataset_by_name(session: Session, workspace_id: int, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.workspace_id == workspace_id, Dataset.name == name))


def get_dataset(session: Session, workspace_id: int, dataset_id: int) -> Dataset | None:
    ds = session.get(Dataset, dataset_id)
    return ds if ds is not None and ds.workspace_id == workspace_id else None


def list_datasets(session: Session, workspace_id: int) -> list[tuple[Dataset, int]]:
    counts = select(DataRow.dataset_id, func.count().label("n")).group_by(DataRow.dataset_id).subquery()
    q = (
        select(Dataset, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.dataset_id == Dataset.id)
        .where(Dataset.workspace_id == workspace_id)
        .order_by(Dataset.id)
    )
    return [(d, int(n)) for d, n in session.execute(q).all()]


def count_rows(session: Session, dataset_id: int) -> int:
    return int(session.scalar(select(func.count()).where(DataRow.dataset_id == dataset_id)) or 0)


def list_classes(session: Session, workspace_id: int) -> list[ObjectClass]:
    return list(
        session.scalars(
            select(ObjectClass).where(ObjectClass.workspace_id == workspace_id).order_by(ObjectClass.id)
        )
    )


def lock_classes(session: Session, workspace_id: int) -> None:
    """Serialize class creation per workspace (external ids are assigned from the current maximum)."""
    session.execute(text("SELECT pg_advisory_xact_lock(7001, CAST(:ws AS int))"), {"ws": workspace_id})


def insert_classes(session: Session, workspace_id: int, items: Iterable[tuple[str, int]]) -> None:
    rows = [{"workspace_id": workspace_id, "name": n, "external_id": e} for n, e in items]
    if rows:
        session.execute(
            text(
                "INSERT INTO classes (workspace_id, name, external_id) "
                "VALUES (:workspace_id, :name, :external_id) ON CONFLICT (workspace_id, name) DO NOTHING"
            ),
            rows,
        )


def create_run(session: Session, workspace_id: int, **fields: Any) -> ModelRun:
    run = ModelRun(workspace_id=workspace_id, **fields)
    session.add(run)
    session.flush()
    return run


def run_by_name(session: Session, workspace_id: int, name: str, version: str) -> ModelRun | None:
    return session.scalar(
        select(ModelRun).where(
            ModelRun.workspace_id == workspace_id, ModelRun.name == name, ModelRun.version == version
        )
    )


def get_run(session: Session, workspace_id: int, run_id: int, *, lock: bool = False) -> ModelRun | None:
    q = select(ModelRun).where(ModelRun.id == run_id, ModelRun.workspace_id == workspace_id)
    if lock:
        q = q.with_for_update()
    return session.scalar(q)


def list_runs(session: Session, workspace_id: int) -> list[ModelRun]:
    return list(
        session.scalars(select(ModelRun).where(ModelRun.workspace_id == workspace_id).order_by(ModelRun.id))
    )


def run_counts(session: Session, run_id: int) -> dict[str, int]:
    rows = session.execute(
        text("SELECT split, count(*) FROM model_run_rows WHERE model_run_id = :run GROUP BY split"),
        {"run": run_id},
    ).all()
    return {str(s): int(n) for s, n in rows}


def lock_run(session: Session, run_id: int) -> None:
    """One prediction import per run at a time (a second waits), so replace-by-row stays consistent."""
    session.execute(text("SELECT pg_advisory_xact_lock(7002, CAST(:run AS int))"), {"run": run_id})


def lock_dataset(session: Session, dataset_id: int) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(7003, CAST(:ds AS int))"), {"ds": dataset_id})
