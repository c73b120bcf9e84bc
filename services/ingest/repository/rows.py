"""Data rows: lookups by key/id/dataset/run, the multi-row upsert, keyset pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.db.models import DataRow
from shared.db.session import driver_connection


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
    raw = driver_connection(session)
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
