"""Every SQL statement of the search service. Sessions come from the caller; nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.search.domain import ObjectFacts, RowFacts
from services.search.schemas import RowFilter
from shared.db.models import (
    Annotation,
    DataRow,
    Dataset,
    ModelRun,
    ModelRunRow,
    ObjectClass,
    ObjectMatch,
    Prediction,
    Projection,
    ProjectionPoint,
    Slice,
    SliceMember,
)
from shared.errors import Conflict

# ---------------------------------------------------------------------------------------------------
# Rows and their facts
# ---------------------------------------------------------------------------------------------------


def rows_by_id(session: Session, workspace_id: int, ids: Sequence[int]) -> list[DataRow]:
    if not ids:
        return []
    stmt = select(DataRow).where(DataRow.workspace_id == workspace_id, DataRow.id.in_(list(ids)))
    return list(session.scalars(stmt.order_by(DataRow.id)))


def lock_rows(session: Session, workspace_id: int, ids: Sequence[int]) -> list[DataRow]:
    """The rows, locked in id order. Waits for a concurrent writer (an annotation import, another embed
    of the same row) instead of skipping: a skipped row would never be embedded. The second embed of a
    row then finds it embedded and only refreshes its payload."""
    if not ids:
        return []
    stmt = (
        select(DataRow)
        .where(DataRow.workspace_id == workspace_id, DataRow.id.in_(list(ids)))
        .order_by(DataRow.id)
        .with_for_update()
    )
    return list(session.scalars(stmt))


def row_facts(session: Session, workspace_id: int, ids: Sequence[int]) -> dict[int, RowFacts]:
    """Payload facts of rows: labels, classes (GT + predictions over each run's threshold), runs,
    splits, error types. Five indexed queries per batch, whatever its size."""
    rows = rows_by_id(session, workspace_id, ids)
    facts = {
        r.id: RowFacts(
            data_row_id=r.id,
            workspace_id=r.workspace_id,
            dataset_id=r.dataset_id,
            labeled=r.num_annotations > 0,
            metadata=dict(r.metadata_ or {}),
        )
        for r in rows
    }
    if not facts:
        return facts
    keys = list(facts)
    gt = (
        select(Annotation.data_row_id, ObjectClass.name)
        .join(ObjectClass, ObjectClass.id == Annotation.class_id)
        .where(Annotation.data_row_id.in_(keys))
        .distinct()
    )
    for row_id, name in session.execute(gt):
        facts[row_id].classes.add(name)
    runs: set[int] = set()
    member = select(ModelRunRow.data_row_id, ModelRunRow.model_run_id, ModelRunRow.split).where(
        ModelRunRow.data_row_id.in_(keys)
    )
    for row_id, run_id, split in session.execute(member):
        facts[row_id].runs.add(run_id)
        facts[row_id].splits.add(f"{run_id}:{split}")
        runs.add(run_id)
    if runs:
        preds = (
            select(Prediction.data_row_id, ObjectClass.name)
            .join(ObjectClass, ObjectClass.id == Prediction.class_id)
            .join(ModelRun, ModelRun.id == Prediction.model_run_id)
            .where(
                Prediction.model_run_id.in_(runs),
                Prediction.data_row_id.in_(keys),
                Prediction.confidence >= ModelRun.confidence_threshold,
            )
            .distinct()
        )
        for row_id, name in session.execute(preds):
            facts[row_id].classes.add(name)
        errs = (
            select(ObjectMatch.data_row_id, ObjectMatch.model_run_id, ObjectMatch.error_type)
            .where(
                ObjectMatch.model_run_id.in_(runs),
                ObjectMatch.data_row_id.in_(keys),
                ObjectMatch.error_type.is_not(None),
            )
            .distinct()
        )
        for row_id, run_id, err in session.execute(errs):
            if row_id in facts:
                facts[row_id].errors.add(f"{run_id}:{err}")
    return facts


def mark_embedded(session: Session, ids: Sequence[int], when: datetime) -> None:
    if ids:
        session.execute(update(DataRow).where(DataRow.id.in_(list(ids))).values(embedded_at=when))


def get_run(session: Session, workspace_id: int, run_id: int) -> ModelRun | None:
    return session.scalars(
        select(ModelRun).where(ModelRun.id == run_id, ModelRun.workspace_id == workspace_id)
    ).first()


def get_dataset(session: Session, workspace_id: int, dataset_id: int) -> Dataset | None:
    return session.scalars(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.workspace_id == workspace_id)
    ).first()


def run_objects(session: Session, run: ModelRun, row_ids: Sequence[int]) -> list[ObjectFacts]:
    """GT boxes and the run's predictions at or over its confidence threshold, with match outcomes."""
    if not row_ids:
        return []
    keys = list(row_ids)
    matches: dict[tuple[str, int], tuple[str, str | None]] = {
        (kind, oid): (status, err)
        for kind, oid, status, err in session.execute(
            select(ObjectMatch.kind, ObjectMatch.object_id, ObjectMatch.status, ObjectMatch.error_type).where(
                ObjectMatch.model_run_id == run.id, ObjectMatch.data_row_id.in_(keys)
            )
        )
    }
    out: list[ObjectFacts] = []
    gt = (
        select(
            Annotation.id,
            Annotation.data_row_id,
            ObjectClass.name,
            Annotation.x,
            Annotation.y,
            Annotation.w,
            Annotation.h,
        )
        .join(ObjectClass, ObjectClass.id == Annotation.class_id)
        .where(Annotation.data_row_id.in_(keys))
        .order_by(Annotation.id)
    )
    for oid, row, name, x, y, w, h in session.execute(gt):
        status, err = matches.get(("gt", oid), (None, None))
        out.append(ObjectFacts(run.id, "gt", oid, row, name, (x, y, w, h), status, err))
    preds = (
        select(
            Prediction.id,
            Prediction.data_row_id,
            ObjectClass.name,
            Prediction.x,
            Prediction.y,
            Prediction.w,
            Prediction.h,
        )
        .join(ObjectClass, ObjectClass.id == Prediction.class_id)
        .where(
            Prediction.model_run_id == run.id,
            Prediction.data_row_id.in_(keys),
            Prediction.confidence >= run.confidence_threshold,
        )
        .order_by(Prediction.id)
    )
    for oid, row, name, x, y, w, h in session.execute(preds):
        status, err = matches.get(("pred", oid), (None, None))
        out.append(ObjectFacts(run.id, "pred", oid, row, name, (x, y, w, h), status, err))
    return out


# ---------------------------------------------------------------------------------------------------
# Row filters in SQL (slices, and the final check of similarity results)
# ---------------------------------------------------------------------------------------------------


def _conditions(
    workspace_id: int, f: RowFilter, *, dataset_id: int | None, model_run_id: int | None
) -> list[ColumnElement[bool]]:
    d = DataRow
    conds: list[ColumnElement[bool]] = [d.workspace_id == workspace_id]
    if f.annotation == "none":
        conds.append(d.num_annotations == 0)
    elif f.annotation == "any":
        conds.append(d.num_annotations > 0)
    if f.dataset_ids is not None:
        conds.append(d.dataset_id.in_(f.dataset_ids))
    if dataset_id is not None:
        conds.append(d.dataset_id == dataset_id)
    for run in {r for r in (f.model_run_id, model_run_id) if r is not None}:
        member = [ModelRunRow.model_run_id == run, ModelRunRow.data_row_id == d.id]
        if f.splits and run == f.model_run_id:
            member.append(ModelRunRow.split.in_([s.value for s in f.splits]))
        conds.append(exists().where(*member))
    if f.error_types and f.model_run_id is not None:
        conds.append(
            exists().where(
                ObjectMatch.model_run_id == f.model_run_id,
                ObjectMatch.data_row_id == d.id,
                ObjectMatch.error_type.in_([e.value for e in f.error_types]),
            )
        )
    if f.class_names:
        gt = exists().where(
            Annotation.data_row_id == d.id,
            ObjectClass.id == Annotation.class_id,
            ObjectClass.name.in_(f.class_names),
        )
        pred_where = [
            ModelRunRow.data_row_id == d.id,
            Prediction.model_run_id == ModelRunRow.model_run_id,
            Prediction.data_row_id == d.id,
            ModelRun.id == ModelRunRow.model_run_id,
            Prediction.confidence >= ModelRun.confidence_threshold,
            ObjectClass.id == Prediction.class_id,
            ObjectClass.name.in_(f.class_names),
        ]
        if f.model_run_id is not None:
            pred_where.append(ModelRunRow.model_run_id == f.model_run_id)
        conds.append(or_(gt, exists().where(*pred_where)))
    if f.metadata:
        conds.append(d.metadata_.contains(f.metadata))
    return conds


def filter_rows(
    session: Session,
    workspace_id: int,
    f: RowFilter,
    *,
    dataset_id: int | None = None,
    model_run_id: int | None = None,
    ids: Sequence[int] | None = None,
    or_slice_members: int | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[int]:
    """Ids of the workspace's rows that pass the filter (or, with ``or_slice_members``, belong to that
    slice's collected members), ascending, keyset-paged by ``after_id``."""
    conds = _conditions(workspace_id, f, dataset_id=dataset_id, model_run_id=model_run_id)
    where: ColumnElement[bool] = and_(*conds)
    if or_slice_members is not None:
        member = exists().where(
            SliceMember.slice_id == or_slice_members, SliceMember.data_row_id == DataRow.id
        )
        where = and_(DataRow.workspace_id == workspace_id, or_(where, member))
    stmt = select(DataRow.id).where(where, DataRow.id > after_id)
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(DataRow.id.in_(list(ids)))
    stmt = stmt.order_by(DataRow.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


# ---------------------------------------------------------------------------------------------------
# Slices
# ---------------------------------------------------------------------------------------------------


def create_slice(session: Session, workspace_id: int, **values: Any) -> Slice:
    s = Slice(workspace_id=workspace_id, **values)
    try:
        with session.begin_nested():
            session.add(s)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a slice named {values.get('name')!r} already exists in this workspace") from None
    return s


def list_slices(session: Session, workspace_id: int) -> list[tuple[Slice, int]]:
    members = select(func.count()).where(SliceMember.slice_id == Slice.id).correlate(Slice).scalar_subquery()
    stmt = select(Slice, members).where(Slice.workspace_id == workspace_id).order_by(Slice.id)
    return [(s, int(n)) for s, n in session.execute(stmt)]


def get_slice(session: Session, workspace_id: int, slice_id: int) -> Slice | None:
    return session.scalars(
        select(Slice).where(Slice.id == slice_id, Slice.workspace_id == workspace_id)
    ).first()


def count_members(session: Session, slice_id: int) -> int:
    return int(session.scalar(select(func.count()).where(SliceMember.slice_id == slice_id)) or 0)


def member_ids(session: Session, slice_id: int) -> list[int]:
    stmt = (
        select(SliceMember.data_row_id)
        .where(SliceMember.slice_id == slice_id)
        .order_by(SliceMember.data_row_id)
    )
    return list(session.scalars(stmt))


def delete_slice(session: Session, s: Slice) -> None:
    session.delete(s)
    session.flush()


def add_members(session: Session, slice_id: int, row_ids: Sequence[int]) -> int:
    """Insert members, ignoring those already in (idempotent). Returns how many were new."""
    if not row_ids:
        return 0
    stmt = (
        insert(SliceMember)
        .values([{"slice_id": slice_id, "data_row_id": r} for r in sorted(set(row_ids))])
        .on_conflict_do_nothing()
        .returning(SliceMember.data_row_id)
    )
    return len(list(session.scalars(stmt)))


def workspace_slices(session: Session, workspace_id: int) -> list[Slice]:
    return list(session.scalars(select(Slice).where(Slice.workspace_id == workspace_id).order_by(Slice.id)))


# ---------------------------------------------------------------------------------------------------
# Projections
# ---------------------------------------------------------------------------------------------------


def create_projection(session: Session, workspace_id: int, **values: Any) -> Projection:
    p = Projection(workspace_id=workspace_id, status="queued", **values)
    session.add(p)
    session.flush()
    return p


def list_projections(
    session: Session, workspace_id: int, *, model_run_id: int | None, dataset_id: int | None, limit: int
) -> list[Projection]:
    """The workspace's projections, newest first, optionally for one run or dataset."""
    stmt = select(Projection).where(Projection.workspace_id == workspace_id)
    if model_run_id is not None:
        stmt = stmt.where(Projection.model_run_id == model_run_id)
    if dataset_id is not None:
        stmt = stmt.where(Projection.dataset_id == dataset_id)
    return list(session.scalars(stmt.order_by(Projection.id.desc()).limit(limit)))


def get_projection(session: Session, workspace_id: int | None, projection_id: int) -> Projection | None:
    stmt = select(Projection).where(Projection.id == projection_id)
    if workspace_id is not None:
        stmt = stmt.where(Projection.workspace_id == workspace_id)
    return session.scalars(stmt).first()


def lock_projection(session: Session, projection_id: int) -> Projection | None:
    stmt = select(Projection).where(Projection.id == projection_id).with_for_update(nowait=False)
    return session.scalars(stmt).first()


def set_projection_status(session: Session, p: Projection, status: str) -> None:
    p.status = status
    session.flush()


def projection_row_ids(session: Session, p: Projection) -> list[int]:
    """Embedded rows of the projection's dataset or run, ascending."""
    stmt = select(DataRow.id).where(DataRow.workspace_id == p.workspace_id, DataRow.embedded_at.is_not(None))
    if p.dataset_id is not None:
        stmt = stmt.where(DataRow.dataset_id == p.dataset_id)
    if p.model_run_id is not None:
        stmt = stmt.where(
            exists().where(ModelRunRow.model_run_id == p.model_run_id, ModelRunRow.data_row_id == DataRow.id)
        )
    return list(session.scalars(stmt.order_by(DataRow.id)))


def replace_points(session: Session, projection_id: int, rows: Sequence[tuple[int, float, float]]) -> None:
    """Delete the projection's old points and COPY the new ones in (one round trip for a million)."""
    session.execute(delete(ProjectionPoint).where(ProjectionPoint.projection_id == projection_id))
    session.flush()
    raw: Any = session.connection().connection.dbapi_connection
    with (
        raw.cursor() as cur,
        cur.copy("COPY projection_points (projection_id, data_row_id, x, y) FROM STDIN") as copy,
    ):
        for row_id, x, y in rows:
            copy.write_row((projection_id, row_id, x, y))


def count_points(session: Session, projection_id: int) -> int:
    stmt = select(func.count()).where(ProjectionPoint.projection_id == projection_id)
    return int(session.scalar(stmt) or 0)


def page_points(
    session: Session, projection_id: int, *, after_id: int, limit: int
) -> list[tuple[int, float, float]]:
    stmt = (
        select(ProjectionPoint.data_row_id, ProjectionPoint.x, ProjectionPoint.y)
        .where(ProjectionPoint.projection_id == projection_id, ProjectionPoint.data_row_id > after_id)
        .order_by(ProjectionPoint.data_row_id)
        .limit(limit)
    )
    return [(int(r), float(x), float(y)) for r, x, y in session.execute(stmt)]
