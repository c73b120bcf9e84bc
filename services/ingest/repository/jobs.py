"""Job rows: creation, locking, progress (own transaction) and outcome."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from shared.db.models import Job


def create_job(
    session: Session,
    job_id: uuid.UUID,
    workspace_id: int,
    kind: str,
    params: dict[str, Any],
    run_id: int | None,
) -> Job:
    job = Job(
        id=job_id, workspace_id=workspace_id, kind=kind, params=params, model_run_id=run_id, status="queued"
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, workspace_id: int, job_id: uuid.UUID) -> Job | None:
    job = session.get(Job, job_id)
    return job if job is not None and job.workspace_id == workspace_id else None


def lock_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update(skip_locked=True))


def set_progress(
    engine: Engine, job_id: uuid.UUID, processed: int, total: int, status: str = "running"
) -> None:
    """Progress is written in its own short transaction so readers see it while the import runs."""
    with engine.begin() as conn:
        conn.execute(
            update(Job).where(Job.id == job_id).values(processed=processed, total=total, status=status)
        )


def finish_job(
    session: Session,
    job_id: uuid.UUID,
    status: str,
    *,
    result: dict[str, Any],
    errors: list[Any],
    processed: int | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "result": result, "errors": errors}
    if processed is not None:
        values["processed"] = processed
    session.execute(update(Job).where(Job.id == job_id).values(**values))
