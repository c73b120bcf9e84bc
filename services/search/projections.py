"""Projector use cases: queue a 2-D map of a dataset's or run's embeddings, compute it, page it."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from services.search import repository as repo
from services.search.domain import decode_cursor, encode_cursor, project_2d
from services.search.schemas import (
    ProjectionCreate,
    ProjectionList,
    ProjectionOut,
    ProjectionPointOut,
    ProjectionPoints,
)
from shared.adapters.vectors import VectorStore
from shared.db.models import Projection
from shared.db.models.enums import JobStatus
from shared.errors import NotFound
from shared.settings import Settings

RETRIEVE_CHUNK = 1024


def _out(session: Session, p: Projection) -> ProjectionOut:
    return ProjectionOut(
        id=p.id,
        dataset_id=p.dataset_id,
        model_run_id=p.model_run_id,
        method=p.method,
        status=p.status,
        num_points=repo.count_points(session, p.id) if p.status == JobStatus.succeeded else 0,
    )


def create(session: Session, workspace_id: int, body: ProjectionCreate) -> Projection:
    if body.dataset_id is not None and repo.get_dataset(session, workspace_id, body.dataset_id) is None:
        raise NotFound(f"dataset {body.dataset_id} not found")
    if body.model_run_id is not None and repo.get_run(session, workspace_id, body.model_run_id) is None:
        raise NotFound(f"model run {body.model_run_id} not found")
    return repo.create_projection(
        session, workspace_id, dataset_id=body.dataset_id, model_run_id=body.model_run_id, method=body.method
    )


def list_(
    session: Session, workspace_id: int, *, model_run_id: int | None, dataset_id: int | None, limit: int
) -> ProjectionList:
    found = repo.list_projections(
        session, workspace_id, model_run_id=model_run_id, dataset_id=dataset_id, limit=limit
    )
    return ProjectionList(projections=[_out(session, p) for p in found])


def get(session: Session, workspace_id: int, projection_id: int) -> ProjectionOut:
    p = repo.get_projection(session, workspace_id, projection_id)
    if p is None:
        raise NotFound(f"projection {projection_id} not found")
    return _out(session, p)


def points(
    session: Session, workspace_id: int, projection_id: int, *, cursor: str | None, limit: int
) -> ProjectionPoints:
    """Keyset pages by data row id: a million points arrive as ~200 pages of 5,000, each one index scan."""
    p = repo.get_projection(session, workspace_id, projection_id)
    if p is None:
        raise NotFound(f"projection {projection_id} not found")
    rows = repo.page_points(session, p.id, after_id=decode_cursor(cursor), limit=limit + 1)
    page = rows[:limit]
    nxt = encode_cursor(page[-1][0]) if len(rows) > limit else None
    return ProjectionPoints(
        points=[ProjectionPointOut(data_row_id=r, x=x, y=y) for r, x, y in page], next_cursor=nxt
    )


def compute(session: Session, store: VectorStore, settings: Settings, projection_id: int) -> int:
    """Compute and store a projection's points (COPY). Safe to run twice: points are replaced.
    Returns the number of points."""
    p = repo.lock_projection(session, projection_id)
    if p is None:
        return 0
    repo.set_projection_status(session, p, JobStatus.running.value)
    ids = repo.projection_row_ids(session, p)
    images = settings.qdrant.image_collection
    got_ids: list[int] = []
    vecs: list[np.ndarray] = []
    for i in range(0, len(ids), RETRIEVE_CHUNK):
        for r in store.retrieve(images, ids[i : i + RETRIEVE_CHUNK], workspace_id=p.workspace_id):
            if r.vector is not None:
                got_ids.append(int(r.id))
                vecs.append(r.vector)
    order = np.argsort(np.asarray(got_ids, dtype=np.int64))
    matrix = np.stack([vecs[i] for i in order]) if vecs else np.zeros((0, 1))
    coords = project_2d(matrix, p.method)
    sorted_ids = [got_ids[i] for i in order]
    repo.replace_points(
        session, p.id, [(rid, float(x), float(y)) for rid, (x, y) in zip(sorted_ids, coords, strict=True)]
    )
    repo.set_projection_status(session, p, JobStatus.succeeded.value)
    return len(sorted_ids)


def mark_failed(session: Session, projection_id: int) -> None:
    p = repo.get_projection(session, None, projection_id)
    if p is not None:
        repo.set_projection_status(session, p, JobStatus.failed.value)
