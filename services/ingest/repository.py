"""Every SQL statement of the ingest service. Bulk writes use COPY (binary for boxes) and multi-row upserts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from shared.db.models import DataRow, Dataset, Job, ModelRun, ObjectClass, Workspace

# ---------------------------------------------------------------- COPY helpers

_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_TYPES = {"int8": (">i8", 8), "float8": (">f8", 8), "bool": ("?", 1)}


def binary_copy_payload(columns: Sequence[tuple[np.ndarray, str]]) -> bytes:
    """The PostgreSQL binary COPY stream of fixed-width columns, built in one vectorized pass.

    ``columns``: (values (n,), pg type in {int8, float8, bool}). No NULLs.
    """
    n = len(columns[0][0])
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for k, (_, pg) in enumerate(columns):
        fields += [(f"len{k}", ">i4"), (f"val{k}", _PG_TYPES[pg][0])]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["count"] = len(columns)
    for k, (values, pg) in enumerate(columns):
        rec[f"len{k}"] = _PG_TYPES[pg][1]
        rec[f"val{k}"] = values
    return _PG_HEADER + rec.tobytes() + _PG_TRAILER


def _copy(session: Session, sql: str, payload: bytes) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        view = memoryview(payload)
        step = 8 << 20
        for i in range(0, len(view), step):
            copy.write(view[i : i + step])


# ---------------------------------------------------------------- workspaces, datasets, classes


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


# ---------------------------------------------------------------- data rows


@dataclass(frozen=True)
class RowRef:
    id: int
    dataset_id: int
    global_key: str
    width: int
    height: int
    sha256: str
    coco_id: int | None
    metadata: dict[str, Any]


_ROW_COLS = (
    "id, dataset_id, global_key, width, height, sha256, "
    "CASE WHEN jsonb_typeof(metadata->'coco_image_id') = 'number' "
    "THEN (metadata->>'coco_image_id')::bigint END AS coco_id, metadata"
)


def _row_refs(session: Session, sql: str, params: dict[str, Any]) -> list[RowRef]:
    return [RowRef(*r) for r in session.execute(text(sql), params).all()]


def rows_by_keys(session: Session, workspace_id: int, keys: Sequence[str]) -> list[RowRef]:
    return _row_refs(
        session,
        f"SELECT {_ROW_COLS} FROM data_rows WHERE workspace_id = :ws AND global_key = ANY(:keys)",
        {"ws": workspace_id, "keys": list(keys)},
    )


def rows_by_ids(session: Session, workspace_id: int, ids: Sequence[int]) -> list[RowRef]:
    return _row_refs(
        session,
        f"SELECT {_ROW_COLS} FROM data_rows WHERE workspace_id = :ws AND id = ANY(:ids)",
        {"ws": workspace_id, "ids": list(ids)},
    )


def rows_of_dataset(session: Session, dataset_id: int) -> list[RowRef]:
    return _row_refs(
        session, f"SELECT {_ROW_COLS} FROM data_rows WHERE dataset_id = :ds ORDER BY id", {"ds": dataset_id}
    )


def rows_of_run(session: Session, run_id: int) -> list[RowRef]:
    return _row_refs(
        session,
        f"SELECT {_ROW_COLS} FROM data_rows WHERE id IN "
        "(SELECT data_row_id FROM model_run_rows WHERE model_run_id = :run) ORDER BY id",
        {"run": run_id},
    )


def upsert_rows(session: Session, rows: list[dict[str, Any]]) -> dict[str, tuple[int, bool]]:
    """COPY into a temp table, then one INSERT .. ON CONFLICT (workspace_id, global_key).

    Returns ``{global_key: (id, inserted)}`` for rows inserted or changed (unchanged rows are not touched).
    """
    if not rows:
        return {}
    session.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS ingest_rows_tmp (workspace_id bigint, dataset_id bigint,"
            " global_key text, object_key text, thumbnail_key text, width int, height int, sha256 text,"
            " media_type text, metadata jsonb) ON COMMIT DELETE ROWS"
        )
    )
    session.execute(text("TRUNCATE ingest_rows_tmp"))
    cols = (
        "workspace_id",
        "dataset_id",
        "global_key",
        "object_key",
        "thumbnail_key",
        "width",
        "height",
        "sha256",
        "media_type",
        "metadata",
    )
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY ingest_rows_tmp ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for r in rows:
            copy.write_row([*(r[c] for c in cols[:-1]), orjson.dumps(r["metadata"]).decode()])
    result = session.execute(
        text(
            "INSERT INTO data_rows AS d (workspace_id, dataset_id, global_key, object_key, thumbnail_key,"
            " width, height, sha256, media_type, metadata) "
            "SELECT workspace_id, dataset_id, global_key, object_key, thumbnail_key, width, height, sha256,"
            " media_type, metadata FROM ingest_rows_tmp "
            "ON CONFLICT (workspace_id, global_key) DO UPDATE SET object_key = EXCLUDED.object_key,"
            " thumbnail_key = EXCLUDED.thumbnail_key, width = EXCLUDED.width, height = EXCLUDED.height,"
            " sha256 = EXCLUDED.sha256, media_type = EXCLUDED.media_type,"
            " metadata = d.metadata || EXCLUDED.metadata, updated_at = now() "
            "WHERE (d.sha256, d.metadata) IS DISTINCT FROM (EXCLUDED.sha256, d.metadata || EXCLUDED.metadata) "
            "RETURNING id, global_key, (xmax = 0) AS inserted"
        )
    )
    return {key: (int(i), bool(ins)) for i, key, ins in result.all()}


def set_coco_ids(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """Remember each row's COCO image id (metadata.coco_image_id) so COCO results can name it."""
    if not pairs:
        return
    ids, coco = zip(*pairs, strict=True)
    session.execute(
        text(
            "UPDATE data_rows d SET metadata = d.metadata || jsonb_build_object('coco_image_id', v.coco) "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:coco AS bigint[])) AS v(id, coco) "
            "WHERE d.id = v.id AND (d.metadata->'coco_image_id') IS DISTINCT FROM to_jsonb(v.coco)"
        ),
        {"ids": list(ids), "coco": list(coco)},
    )


def list_rows(session: Session, dataset_id: int, after_id: int, limit: int) -> list[DataRow]:
    q = (
        select(DataRow)
        .where(DataRow.dataset_id == dataset_id, DataRow.id > after_id)
        .order_by(DataRow.id)
        .limit(limit)
    )
    return list(session.scalars(q))


# ---------------------------------------------------------------- boxes


def replace_annotations(
    session: Session,
    workspace_id: int,
    row_ids: Sequence[int],
    box_rows: np.ndarray,
    class_ids: np.ndarray,
    xywh: np.ndarray,
    area: np.ndarray,
    iscrowd: np.ndarray,
) -> None:
    """The GT of ``row_ids`` becomes exactly these boxes (delete + binary COPY), then recount."""
    ids = list(row_ids)
    session.execute(text("DELETE FROM annotations WHERE data_row_id = ANY(:ids)"), {"ids": ids})
    if len(box_rows):
        payload = binary_copy_payload(
            [
                (np.full(len(box_rows), workspace_id, dtype=np.int64), "int8"),
                (box_rows.astype(np.int64), "int8"),
                (class_ids.astype(np.int64), "int8"),
                (xywh[:, 0], "float8"),
                (xywh[:, 1], "float8"),
                (xywh[:, 2], "float8"),
                (xywh[:, 3], "float8"),
                (area.astype(np.float64), "float8"),
                (iscrowd.astype(bool), "bool"),
            ]
        )
        _copy(
            session,
            "COPY annotations (workspace_id, data_row_id, class_id, x, y, w, h, area, iscrowd) "
            "FROM STDIN (FORMAT BINARY)",
            payload,
        )
    session.execute(
        text(
            "UPDATE data_rows d SET num_annotations = COALESCE(c.n, 0) FROM unnest(CAST(:ids AS bigint[])) AS r(id) "
            "LEFT JOIN (SELECT data_row_id, count(*) AS n FROM annotations WHERE data_row_id = ANY(:ids) "
            "GROUP BY data_row_id) c ON c.data_row_id = r.id "
            "WHERE d.id = r.id AND d.num_annotations IS DISTINCT FROM COALESCE(c.n, 0)"
        ),
        {"ids": ids},
    )


def replace_predictions(
    session: Session,
    run_id: int,
    row_ids: Sequence[int],
    box_rows: np.ndarray,
    class_ids: np.ndarray,
    xywh: np.ndarray,
    conf: np.ndarray,
) -> None:
    """The predictions of ``row_ids`` in the run become exactly these boxes (delete + binary COPY)."""
    session.execute(
        text("DELETE FROM predictions WHERE model_run_id = :run AND data_row_id = ANY(:ids)"),
        {"run": run_id, "ids": list(row_ids)},
    )
    if not len(box_rows):
        return
    payload = binary_copy_payload(
        [
            (np.full(len(box_rows), run_id, dtype=np.int64), "int8"),
            (box_rows.astype(np.int64), "int8"),
            (class_ids.astype(np.int64), "int8"),
            (xywh[:, 0], "float8"),
            (xywh[:, 1], "float8"),
            (xywh[:, 2], "float8"),
            (xywh[:, 3], "float8"),
            (conf.astype(np.float64), "float8"),
        ]
    )
    _copy(
        session,
        "COPY predictions (model_run_id, data_row_id, class_id, x, y, w, h, confidence) FROM STDIN (FORMAT BINARY)",
        payload,
    )


def add_run_rows(session: Session, run_id: int, row_ids: Sequence[int]) -> None:
    """Rows that got predictions join the run (split 'unassigned' unless already set)."""
    session.execute(
        text(
            "INSERT INTO model_run_rows (model_run_id, data_row_id) "
            "SELECT :run, unnest(CAST(:ids AS bigint[])) ON CONFLICT DO NOTHING"
        ),
        {"run": run_id, "ids": list(row_ids)},
    )


def set_run_splits(session: Session, run_id: int, row_ids: Sequence[int], splits: Sequence[str]) -> int:
    result = session.execute(
        text(
            "INSERT INTO model_run_rows AS m (model_run_id, data_row_id, split) "
            "SELECT :run, r.id, r.split FROM unnest(CAST(:ids AS bigint[]), CAST(:splits AS text[])) AS r(id, split) "
            "ON CONFLICT (model_run_id, data_row_id) DO UPDATE SET split = EXCLUDED.split "
            "WHERE m.split IS DISTINCT FROM EXCLUDED.split RETURNING m.data_row_id"
        ),
        {"run": run_id, "ids": list(row_ids), "splits": list(splits)},
    )
    return len(result.all())


def runs_of_rows(session: Session, row_ids: Sequence[int]) -> dict[int, list[int]]:
    """``{run_id: [row ids]}`` for the runs these rows belong to."""
    out: dict[int, list[int]] = {}
    for run_id, row_id in session.execute(
        text(
            "SELECT model_run_id, data_row_id FROM model_run_rows WHERE data_row_id = ANY(:ids) "
            "ORDER BY model_run_id, data_row_id"
        ),
        {"ids": list(row_ids)},
    ):
        out.setdefault(int(run_id), []).append(int(row_id))
    return out


def annotations_of(session: Session, row_ids: Sequence[int]) -> dict[str, np.ndarray]:
    return _columns(
        session,
        "SELECT id, data_row_id, class_id, x, y, w, h, area, iscrowd FROM annotations "
        "WHERE data_row_id = ANY(:ids) ORDER BY data_row_id, id",
        {"ids": list(row_ids)},
        ("id", "data_row_id", "class_id", "x", "y", "w", "h", "area", "iscrowd"),
    )


def predictions_of(session: Session, run_id: int) -> dict[str, np.ndarray]:
    return _columns(
        session,
        "SELECT id, data_row_id, class_id, x, y, w, h, confidence FROM predictions "
        "WHERE model_run_id = :run ORDER BY data_row_id, id",
        {"run": run_id},
        ("id", "data_row_id", "class_id", "x", "y", "w", "h", "confidence"),
    )


def _columns(
    session: Session, sql: str, params: dict[str, Any], names: Sequence[str]
) -> dict[str, np.ndarray]:
    rows = session.execute(text(sql), params).all()
    if not rows:
        return {n: np.zeros(0) for n in names}
    arr = list(zip(*rows, strict=True))
    return {n: np.asarray(col) for n, col in zip(names, arr, strict=True)}


def count_boxes(session: Session, table: str, where: str, params: dict[str, Any]) -> int:
    return int(session.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), params) or 0)


# ---------------------------------------------------------------- runs


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


# ---------------------------------------------------------------- jobs


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
