"""Every SQL statement of the inference service (sync SQLAlchemy sessions; the caller owns commits)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.models.enums import JobStatus
from shared.db.session import driver_connection

JOB_KIND = "inference"


@dataclass(frozen=True)
class RunRef:
    id: int
    workspace_id: int
    name: str


@dataclass(frozen=True)
class RowRef:
    id: int
    object_key: str
    width: int
    height: int


# (data_row_id, class_id, x, y, w, h, confidence)
PredictionRecord = tuple[int, int, float, float, float, float, float]


def get_run(session: Session, run_id: int, *, lock: bool = False) -> RunRef | None:
    sql = "SELECT id, workspace_id, name FROM model_runs WHERE id = :id"
    row = session.execute(text(sql + (" FOR SHARE" if lock else "")), {"id": run_id}).one_or_none()
    return RunRef(int(row.id), int(row.workspace_id), str(row.name)) if row else None


def rows_in_workspace(session: Session, workspace_id: int, row_ids: Sequence[int]) -> list[RowRef]:
    """The rows among ``row_ids`` that belong to the workspace, ordered by id."""
    rows = session.execute(
        text(
            "SELECT id, object_key, width, height FROM data_rows"
            " WHERE workspace_id = :ws AND id = ANY(:ids) ORDER BY id"
        ),
        {"ws": workspace_id, "ids": list(row_ids)},
    ).all()
    return [RowRef(int(r.id), str(r.object_key), int(r.width), int(r.height)) for r in rows]


def run_row_ids(session: Session, run_id: int) -> list[int]:
    """Every row of the run (``model_run_rows``), ordered."""
    return [
        int(r[0])
        for r in session.execute(
            text("SELECT data_row_id FROM model_run_rows WHERE model_run_id = :r ORDER BY data_row_id"),
            {"r": run_id},
        )
    ]


def add_run_rows(session: Session, run_id: int, row_ids: Sequence[int]) -> None:
    """Rows we predict on become members of the run (kept split if already members)."""
    session.execute(
        text(
            "INSERT INTO model_run_rows (model_run_id, data_row_id)"
            " SELECT :r, unnest(CAST(:ids AS bigint[])) ON CONFLICT DO NOTHING"
        ),
        {"r": run_id, "ids": list(row_ids)},
    )


def class_ids(session: Session, workspace_id: int, names: Sequence[str]) -> dict[str, int]:
    """Workspace class id of each name, creating missing classes (``external_id`` = model index)."""
    session.execute(
        text(
            "INSERT INTO classes (workspace_id, name, external_id)"
            " SELECT :ws, n, i - 1 FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS t(n, i)"
            " ON CONFLICT (workspace_id, name) DO NOTHING"
        ),
        {"ws": workspace_id, "names": list(names)},
    )
    rows = session.execute(
        text("SELECT name, id FROM classes WHERE workspace_id = :ws AND name = ANY(:names)"),
        {"ws": workspace_id, "names": list(names)},
    ).all()
    return {str(r.name): int(r.id) for r in rows}


def replace_predictions(
    session: Session, run_id: int, row_ids: Sequence[int], records: Iterable[PredictionRecord]
) -> int:
    """Delete the run's predictions on ``row_ids`` and COPY ``records`` in (same transaction)."""
    session.execute(
        text("DELETE FROM predictions WHERE model_run_id = :r AND data_row_id = ANY(:ids)"),
        {"r": run_id, "ids": list(row_ids)},
    )
    raw = driver_connection(session)
    n = 0
    with (
        raw.cursor() as cur,
        cur.copy(
            "COPY predictions (model_run_id, data_row_id, class_id, x, y, w, h, confidence) FROM STDIN"
        ) as copy,
    ):
        for rec in records:
            copy.write_row((run_id, *rec))
            n += 1
    return n


def count_predictions(session: Session, run_id: int, row_ids: Sequence[int] | None = None) -> int:
    sql = "SELECT count(*) FROM predictions WHERE model_run_id = :r"
    params: dict[str, Any] = {"r": run_id}
    if row_ids is not None:
        sql += " AND data_row_id = ANY(:ids)"
        params["ids"] = list(row_ids)
    return int(session.execute(text(sql), params).scalar_one())


# --- jobs ------------------------------------------------------------------------------------------------


def create_job(
    session: Session, workspace_id: int, run_id: int, total: int, params: dict[str, Any]
) -> uuid.UUID:
    job_id = uuid.uuid4()
    session.execute(
        text(
            "INSERT INTO jobs (id, workspace_id, kind, status, model_run_id, processed, total, params)"
            " VALUES (:id, :ws, :kind, :st, :r, 0, :total, CAST(:params AS jsonb))"
        ),
        {
            "id": job_id,
            "ws": workspace_id,
            "kind": JOB_KIND,
            "st": JobStatus.queued.value,
            "r": run_id,
            "total": total,
            "params": _json(params),
        },
    )
    return job_id


def mark_running(session: Session, job_id: uuid.UUID) -> None:
    session.execute(
        text("UPDATE jobs SET status = :st WHERE id = :id AND status = :queued"),
        {"id": job_id, "st": JobStatus.running.value, "queued": JobStatus.queued.value},
    )


def record_chunk(
    session: Session,
    job_id: uuid.UUID,
    chunk_key: str,
    rows: int,
    predictions: int,
    errors: Sequence[dict[str, Any]],
) -> None:
    """Mark one chunk of the job done, idempotently (a rerun overwrites its own entry), and derive
    ``processed`` from all chunks; the job succeeds when every row is processed."""
    session.execute(
        text(
            "UPDATE jobs SET result = jsonb_set(jsonb_set(result, '{chunks}', coalesce(result->'chunks', '{}')),"
            " ARRAY['chunks', :key], CAST(:entry AS jsonb))"
            " WHERE id = :id"
        ),
        {
            "id": job_id,
            "key": chunk_key,
            "entry": _json({"rows": rows, "predictions": predictions, "errors": list(errors)}),
        },
    )
    session.execute(
        text(
            "UPDATE jobs SET"
            " processed = least(total, s.rows),"
            " result = result || jsonb_build_object('predictions', s.preds),"
            " errors = s.errs,"
            " status = CASE WHEN s.rows >= total AND status <> :failed THEN :done ELSE status END"
            " FROM (SELECT coalesce(sum((c.value->>'rows')::int), 0) AS rows,"
            "              coalesce(sum((c.value->>'predictions')::int), 0) AS preds,"
            "              coalesce((SELECT jsonb_agg(e) FROM jsonb_each(j.result->'chunks') c2,"
            "                        jsonb_array_elements(c2.value->'errors') e), '[]') AS errs"
            "       FROM jobs j CROSS JOIN LATERAL jsonb_each(j.result->'chunks') c"
            "       WHERE j.id = :id GROUP BY j.result) s"
            " WHERE jobs.id = :id"
        ),
        {"id": job_id, "done": JobStatus.succeeded.value, "failed": JobStatus.failed.value},
    )


def mark_failed(session: Session, job_id: uuid.UUID, error: str) -> None:
    session.execute(
        text(
            "UPDATE jobs SET status = :st, errors = errors || jsonb_build_array(CAST(:err AS text))"
            " WHERE id = :id"
        ),
        {"id": job_id, "st": JobStatus.failed.value, "err": error[:1000]},
    )


def get_job(session: Session, job_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(
                "SELECT id, status, processed, total, errors, result, model_run_id FROM jobs WHERE id = :id"
            ),
            {"id": job_id},
        )
        .mappings()
        .one_or_none()
    )
    return dict(row) if row else None


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
