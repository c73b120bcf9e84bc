"""Every SQL statement of the metrics service.

Bulk paths use psycopg directly on the session's connection (same transaction): ``COPY ... (FORMAT
BINARY)`` for writes, plain fetches turned into numpy arrays for reads. A run's results are read and
written through its own partitions by name (``shared.db.partitions.partition``), which works whether they
are attached or, during a bulk first computation, detached loading tables.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db import partitions, pgcopy
from shared.db.models.enums import Split
from shared.db.partitions import partition
from shared.db.pgcopy import Column
from shared.db.session import driver_connection
from shared.logging import get_logger
from shared.metrics.rows import ObjectResults, RowBatch, RowTable

log = get_logger(__name__)

ERROR_COLUMNS = ("cls", "loc", "both", "dupe", "bkg", "miss")


_pg = driver_connection


@dataclass(frozen=True)
class RunThresholds:
    model_run_id: int
    iou_threshold: float
    confidence_threshold: float


def lock_run_shared(session: Session, model_run_id: int) -> RunThresholds | None:
    """Read the run's thresholds and hold a share lock on it until commit.

    A threshold change (``UPDATE model_runs``) waits for row tasks in flight, and row tasks that start
    after it see the new thresholds: no row is left computed at stale thresholds.
    """
    row = session.execute(
        text("SELECT id, iou_threshold, confidence_threshold FROM model_runs WHERE id = :id FOR SHARE"),
        {"id": model_run_id},
    ).first()
    return None if row is None else RunThresholds(int(row[0]), float(row[1]), float(row[2]))


def get_run(session: Session, model_run_id: int) -> RunThresholds | None:
    row = session.execute(
        text("SELECT id, iou_threshold, confidence_threshold FROM model_runs WHERE id = :id"),
        {"id": model_run_id},
    ).first()
    return None if row is None else RunThresholds(int(row[0]), float(row[1]), float(row[2]))


def lock_row_set(session: Session, model_run_id: int, row_ids: Sequence[int]) -> None:
    """Serialise two deliveries of the same row set (a redelivered task running beside the first)."""
    key = zlib.crc32(np.asarray(sorted(row_ids), dtype=np.int64).tobytes())
    session.execute(
        text("SELECT pg_advisory_xact_lock(:a, :b)"),
        {"a": int(model_run_id % 2_147_483_647), "b": int(key - 2_147_483_648)},
    )


def lock_aggregation(session: Session, model_run_id: int) -> None:
    session.execute(
        text("SELECT pg_advisory_xact_lock(:a, :b)"),
        {"a": int(model_run_id % 2_147_483_647), "b": -1},
    )


def prepare_bulk_load(session: Session, model_run_id: int, min_rows: int) -> bool:
    """Put a new run with at least ``min_rows`` rows into bulk-load mode (shared/db/partitions.py).

    True when this call switched the run to loading tables. Cheap when there is nothing to do: a catalog
    lookup, then one probe of the run's ``row_metrics`` partition.
    """
    conn = _pg(session)
    if partitions.state(conn, model_run_id) != "attached":  # catalog only: no lock on the tables
        return False
    # The run's partition lock before touching its tables: two workers probing a table while one of
    # them swaps it would deadlock (AccessShare held, AccessExclusive wanted).
    partitions.lock_run(conn, model_run_id)
    if partitions.state(conn, model_run_id) != "attached":
        return False
    probe = f"SELECT EXISTS (SELECT 1 FROM {partition('row_metrics', model_run_id)})"
    if conn.execute(probe).fetchone()[0]:  # type: ignore[index]
        return False
    if run_row_count(session, model_run_id) < min_rows:
        return False
    return partitions.begin_bulk_load(conn, model_run_id)


def analyze_inputs(session: Session, model_run_id: int) -> None:
    """Fresh planner statistics for a new large run's inputs (its predictions partition, GT, members).

    A run is usually computed right after its import, before autovacuum has analyzed what was loaded;
    without statistics the row tasks' lookups by row id can plan as sequential scans.
    """
    conn = _pg(session)
    part = conn.execute(
        "SELECT tableoid::regclass::text FROM predictions WHERE model_run_id = %s LIMIT 1", (model_run_id,)
    ).fetchone()
    tables = ["annotations", "model_run_rows"] + ([part[0]] if part else [])
    for table in tables:
        conn.execute(f"ANALYZE {table}")


def run_row_splits(session: Session, model_run_id: int, row_ids: Sequence[int] | None) -> dict[int, str]:
    """Split of each row of the run (only rows that belong to it)."""
    with _pg(session).cursor() as cur:
        if row_ids is None:
            cur.execute(
                "SELECT data_row_id, split FROM model_run_rows WHERE model_run_id = %s", (model_run_id,)
            )
        else:
            cur.execute(
                "SELECT data_row_id, split FROM model_run_rows WHERE model_run_id = %s::int8"
                " AND data_row_id = ANY(%s::int8[])",
                (model_run_id, list(row_ids)),
            )
        return {int(r): str(s) for r, s in cur.fetchall()}


def digest_row_count(session: Session, model_run_id: int) -> int:
    """Rows described by the run's match digests (each row by at most one): read from the stored
    lengths, without reading the digests."""
    row = (
        _pg(session)
        .execute(
            "SELECT coalesce(sum(length(row_ids)), 0) / 8 FROM match_digests WHERE model_run_id = %s::int8",
            (model_run_id,),
        )
        .fetchone()
    )
    return int(row[0]) if row else 0


def run_row_count(session: Session, model_run_id: int) -> int:
    row = (
        _pg(session)
        .execute("SELECT count(*) FROM model_run_rows WHERE model_run_id = %s::int8", (model_run_id,))
        .fetchone()
    )
    return int(row[0]) if row else 0


def run_row_ids(session: Session, model_run_id: int) -> list[int]:
    with _pg(session).cursor() as cur:
        cur.execute(
            "SELECT data_row_id FROM model_run_rows WHERE model_run_id = %s ORDER BY data_row_id",
            (model_run_id,),
        )
        return [int(r[0]) for r in cur.fetchall()]


def _array(rows: list[tuple[Any, ...]], cols: int) -> NDArray[np.float64]:
    if not rows:
        return np.zeros((0, cols))
    return np.asarray(rows, dtype=np.float64).reshape(-1, cols)


def load_batch(session: Session, model_run_id: int, row_ids: Sequence[int]) -> RowBatch:
    """GT and predictions of these rows in this run, as arrays."""
    ids = list(row_ids)
    with _pg(session).cursor() as cur:
        p = pgcopy.copy_out_fixed(
            cur,
            "SELECT id, data_row_id, class_id, x, y, w, h, COALESCE(confidence, 'NaN') FROM predictions"
            " WHERE model_run_id = %s::int8 AND data_row_id = ANY(%s::int8[])",
            (model_run_id, ids),
            ["int8", "int8", "int8", "float8", "float8", "float8", "float8", "float8"],
        )
        g = pgcopy.copy_out_fixed(
            cur,
            "SELECT id, data_row_id, class_id, x, y, w, h, COALESCE(area, 'NaN'), iscrowd::int::int2 FROM annotations"
            " WHERE data_row_id = ANY(%s::int8[])",
            (ids,),
            ["int8", "int8", "int8", "float8", "float8", "float8", "float8", "float8", "int2"],
        )
    return RowBatch(
        row_ids=np.asarray(ids, dtype=np.int64),
        pred_id=p[0],
        pred_row=p[1],
        pred_cls=p[2],
        pred_box=np.ascontiguousarray(np.stack(p[3:7], axis=1)),
        pred_score=p[7],
        gt_id=g[0],
        gt_row=g[1],
        gt_cls=g[2],
        gt_box=np.ascontiguousarray(np.stack(g[3:7], axis=1)),
        gt_area=g[7],
        gt_crowd=g[8] > 0,
    )


def delete_row_results(session: Session, model_run_id: int, row_ids: Sequence[int]) -> None:
    """Delete the row set's results (a redelivered or repeated task rewrites them).

    The bounds make the ``data_row_id`` index range the plan even when the tables have no statistics (a
    bulk load's, or a new run's): with ``= ANY`` alone the planner, believing the table tiny, filtered
    every row of the run, which made a bulk load quadratic. No ``model_run_id`` condition: the run's own
    table holds only its rows (partition bound, or a loading table's CHECK), and with one the planner
    ANDed in a primary-key scan over every row of the run already written (31 ms instead of 4 ms per
    table at a third of a 100k-row run).
    """
    ids = sorted(set(row_ids))
    if not ids:
        return
    with _pg(session).cursor() as cur:
        for table in ("object_matches", "row_class_metrics", "row_metrics"):
            cur.execute(
                f"DELETE FROM {partition(table, model_run_id)}"
                " WHERE data_row_id BETWEEN %s::int8 AND %s::int8 AND data_row_id = ANY(%s::int8[])",
                (ids[0], ids[-1], ids),
            )


def _text(name: str, values: NDArray[Any], labels: Sequence[str]) -> Column:
    """A text column from str/None values (None = NULL); every other value must be one of ``labels``.

    One vectorised comparison per label (a few labels, ~17k objects per task): about 10x faster than a
    dict lookup per value.
    """
    codes = np.full(len(values), -1, dtype=np.int64)
    for i, label in enumerate(labels):
        codes[values == label] = i
    null = codes < 0
    if null.any():
        unknown = {v for v in values[null].tolist() if v is not None}
        if unknown:
            raise ValueError(f"{name}: values outside {list(labels)}: {sorted(unknown)[:5]}")
    return Column(name, "text", np.maximum(codes, 0), null=null, labels=labels)


def _float(name: str, a: NDArray[np.float64]) -> Column:
    """float8, NaN written as NULL."""
    return Column(name, "float8", a, null=np.isnan(a))


def _int_or_null(name: str, a: NDArray[Any], type_: str = "int8") -> Column:
    """An integer column: -1 (ids) or NaN (float-held counts) written as NULL."""
    if a.dtype.kind == "f":
        null = np.isnan(a)
        return Column(name, type_, np.where(null, 0, a).astype(np.int64), null=null)
    return Column(name, type_, a, null=a == -1)


STATUS_LABELS = ("TP", "FP", "FN")
ERROR_LABELS = ERROR_COLUMNS
KIND_LABELS = ("pred", "gt")


def copy_objects(session: Session, model_run_id: int, o: ObjectResults, keep: NDArray[np.bool_]) -> None:
    """COPY the objects selected by ``keep`` into the run's ``object_matches``."""
    sel = np.nonzero(keep)[0]
    n = len(sel)
    columns = [
        Column("model_run_id", "int8", np.full(n, model_run_id, dtype=np.int64)),
        Column("kind", "text", np.where(o.kind_is_pred[sel], 0, 1), labels=KIND_LABELS),
        Column("object_id", "int8", o.object_id[sel]),
        Column("data_row_id", "int8", o.data_row_id[sel]),
        Column("class_id", "int8", o.class_id[sel]),
        _float("confidence", o.confidence[sel]),
        _text("status", o.status[sel], STATUS_LABELS),
        _int_or_null("matched_object_id", o.matched_object_id[sel]),
        _float("iou", o.iou[sel]),
        _text("error_type", o.error_type[sel], ERROR_LABELS),
        Column("tp_mask", "int2", o.tp_mask[sel]),
        _float("area", o.area[sel]),
        Column("iscrowd", "bool", o.iscrowd[sel]),
        Column("ignored", "bool", o.ignored[sel]),
        Column("ign_mask", "int2", o.ign_mask[sel]),
        Column("area_masks", "int8", o.area_masks[sel]),
        _float("match_iou", o.match_iou[sel]),
        Column("match_ious", "float8[]", o.match_ious[sel], null=~o.has_match_ious[sel]),
        _text("tide_error", o.tide_error[sel], ERROR_LABELS),
        _int_or_null("tide_fix_class", o.tide_fix_class[sel]),
    ]
    pgcopy.copy_in_session(session, partition("object_matches", model_run_id), columns)


def _metric_columns(t: RowTable, sel: NDArray[np.int64], splits: NDArray[Any]) -> list[Column]:
    return [
        _text("split", splits, SPLIT_LABELS),
        Column("num_gt", "int4", t.num_gt[sel]),
        Column("num_pred", "int4", t.num_pred[sel]),
        Column("tp", "int4", t.tp[sel]),
        Column("fp", "int4", t.fp[sel]),
        Column("fn", "int4", t.fn[sel]),
        _float("precision", t.precision[sel]),
        _float("recall", t.recall[sel]),
        _float("f1", t.f1[sel]),
        _float("mean_iou", t.mean_iou[sel]),
        _float("min_conf", t.min_conf[sel]),
        _float("mean_conf", t.mean_conf[sel]),
        _float("max_conf", t.max_conf[sel]),
        _float("lb_iou", t.lb_iou[sel]),
        _int_or_null("lb_tp", t.lb_tp[sel], "int4"),
        _int_or_null("lb_fp", t.lb_fp[sel], "int4"),
        _int_or_null("lb_fn", t.lb_fn[sel], "int4"),
        *(Column(f"n_{e}", "int4", t.n_err[e][sel]) for e in ERROR_COLUMNS),
    ]


SPLIT_LABELS = tuple(s.value for s in Split)


def _member_rows(t: RowTable, split_of: dict[int, str]) -> tuple[NDArray[np.int64], NDArray[Any]]:
    rows = t.data_row_id.tolist()
    sel = np.array([i for i, r in enumerate(rows) if r in split_of], dtype=np.int64)
    splits = np.array([split_of[rows[i]] for i in sel.tolist()], dtype=object)
    return sel, splits


def copy_row_metrics(session: Session, model_run_id: int, t: RowTable, split_of: dict[int, str]) -> None:
    sel, splits = _member_rows(t, split_of)
    columns = [
        Column("model_run_id", "int8", np.full(len(sel), model_run_id, dtype=np.int64)),
        Column("data_row_id", "int8", t.data_row_id[sel]),
        Column("has_gt", "bool", t.num_gt[sel] > 0),
        Column("has_pred", "bool", t.num_pred[sel] > 0),
        *_metric_columns(t, sel, splits),
    ]
    pgcopy.copy_in_session(session, partition("row_metrics", model_run_id), columns)


def copy_row_class_metrics(
    session: Session, model_run_id: int, t: RowTable, split_of: dict[int, str]
) -> None:
    assert t.class_id is not None
    sel, splits = _member_rows(t, split_of)
    columns = [
        Column("model_run_id", "int8", np.full(len(sel), model_run_id, dtype=np.int64)),
        Column("class_id", "int8", t.class_id[sel]),
        Column("data_row_id", "int8", t.data_row_id[sel]),
        *_metric_columns(t, sel, splits),
    ]
    pgcopy.copy_in_session(session, partition("row_class_metrics", model_run_id), columns)


# --- Thresholds without recompute (docs/metrics.md) --------------------------------------------------

# Per-row metrics of run %(run)s at grid IoU index %(k)s (IoU 0.50 + 0.05 k) and confidence %(conf)s,
# from object_matches alone. %(bit)s = 1 << k, %(k1)s = k + 1 (1-based array index).
# Definitions equal shared.metrics.rows.prf / evaluate_rows (docs/metrics.md, "Per row").
ROW_METRICS_AT_SQL = """
WITH p AS (
    SELECT data_row_id, class_id,
           count(*) AS num_pred,
           count(*) FILTER (WHERE tp_mask & %(bit)s <> 0) AS tp,
           count(*) FILTER (WHERE tp_mask & %(bit)s = 0 AND ign_mask & %(bit)s = 0) AS fp,
           sum(COALESCE(match_ious[%(k1)s], match_iou)) FILTER (WHERE tp_mask & %(bit)s <> 0) AS iou_sum,
           min(confidence) AS min_conf, avg(confidence) AS mean_conf, max(confidence) AS max_conf,
           sum(confidence) AS conf_sum
    FROM object_matches
    WHERE model_run_id = %(run)s AND kind = 'pred' AND confidence >= %(conf)s
    GROUP BY GROUPING SETS ((data_row_id), (data_row_id, class_id))
), g AS (
    SELECT data_row_id, class_id, count(*) FILTER (WHERE NOT ignored) AS num_gt
    FROM object_matches
    WHERE model_run_id = %(run)s AND kind = 'gt'
    GROUP BY GROUPING SETS ((data_row_id), (data_row_id, class_id))
), c AS (
    SELECT COALESCE(p.data_row_id, g.data_row_id) AS data_row_id,
           COALESCE(p.class_id, g.class_id) AS class_id,
           COALESCE(g.num_gt, 0) AS num_gt, COALESCE(p.num_pred, 0) AS num_pred,
           COALESCE(p.tp, 0) AS tp, COALESCE(p.fp, 0) AS fp,
           COALESCE(g.num_gt, 0) - COALESCE(p.tp, 0) AS fn,
           p.iou_sum, p.min_conf, p.max_conf, p.conf_sum
    FROM p FULL JOIN g
      ON p.data_row_id = g.data_row_id AND p.class_id IS NOT DISTINCT FROM g.class_id
), m AS (
    SELECT c.*,
           CASE WHEN tp + fp > 0 THEN tp::float8 / (tp + fp) END AS precision,
           CASE WHEN tp + fn > 0 THEN tp::float8 / (tp + fn) END AS recall,
           CASE WHEN tp > 0 THEN iou_sum / tp END AS mean_iou,
           CASE WHEN num_pred > 0 THEN conf_sum / num_pred END AS mean_conf
    FROM c
)
SELECT data_row_id, class_id, num_gt, num_pred, tp, fp, fn, precision, recall,
       CASE
           WHEN precision IS NOT NULL AND recall IS NOT NULL THEN
               CASE WHEN precision + recall > 0 THEN 2 * precision * recall / (precision + recall) ELSE 0 END
           WHEN precision = 0 OR recall = 0 THEN 0
       END AS f1,
       mean_iou, min_conf, mean_conf, max_conf
FROM m
"""

_UPDATE_ROWS_SQL = f"""
WITH r AS ({ROW_METRICS_AT_SQL})
UPDATE row_metrics t SET
    num_gt = COALESCE(r.num_gt, 0), num_pred = COALESCE(r.num_pred, 0), tp = COALESCE(r.tp, 0),
    fp = COALESCE(r.fp, 0), fn = COALESCE(r.fn, 0), precision = r.precision, recall = r.recall,
    f1 = r.f1, mean_iou = r.mean_iou, min_conf = r.min_conf, mean_conf = r.mean_conf,
    max_conf = r.max_conf, has_gt = COALESCE(r.num_gt, 0) > 0, has_pred = COALESCE(r.num_pred, 0) > 0
FROM row_metrics t2 LEFT JOIN r ON r.data_row_id = t2.data_row_id AND r.class_id IS NULL
WHERE t.model_run_id = %(run)s AND t2.model_run_id = %(run)s AND t2.data_row_id = t.data_row_id
"""

_UPDATE_ROW_CLASSES_SQL = f"""
WITH r AS ({ROW_METRICS_AT_SQL})
UPDATE row_class_metrics t SET
    num_gt = COALESCE(r.num_gt, 0), num_pred = COALESCE(r.num_pred, 0), tp = COALESCE(r.tp, 0),
    fp = COALESCE(r.fp, 0), fn = COALESCE(r.fn, 0), precision = r.precision, recall = r.recall,
    f1 = r.f1, mean_iou = r.mean_iou, min_conf = r.min_conf, mean_conf = r.mean_conf,
    max_conf = r.max_conf
FROM row_class_metrics t2 LEFT JOIN r
  ON r.data_row_id = t2.data_row_id AND r.class_id = t2.class_id
WHERE t.model_run_id = %(run)s AND t2.model_run_id = %(run)s
  AND t2.data_row_id = t.data_row_id AND t2.class_id = t.class_id
"""


_RUN_TABLE = re.compile(r"\b(FROM|UPDATE) (object_matches|row_class_metrics|row_metrics)\b")


def _on_partitions(sql: str, model_run_id: int) -> str:
    """``sql`` reading and writing the run's own partitions (attached or loading) instead of the parents."""
    return _RUN_TABLE.sub(lambda m: f"{m.group(1)} {partition(m.group(2), model_run_id)}", sql)


def row_metrics_at(session: Session, model_run_id: int, k: int, conf: float) -> list[tuple[Any, ...]]:
    """Rows of ``ROW_METRICS_AT_SQL``: (data_row_id, class_id or None, num_gt, ..., max_conf)."""
    with _pg(session).cursor() as cur:
        cur.execute(_on_partitions(ROW_METRICS_AT_SQL, model_run_id), _params(model_run_id, k, conf))
        return list(cur.fetchall())


def _params(model_run_id: int, k: int, conf: float) -> dict[str, Any]:
    return {"run": model_run_id, "k1": k + 1, "bit": 1 << k, "conf": conf}


def update_row_metrics_at(session: Session, model_run_id: int, k: int, conf: float) -> None:
    """The cheap path of a threshold change: rewrite the stored per-row numbers from object_matches."""
    with _pg(session).cursor() as cur:
        cur.execute(_on_partitions(_UPDATE_ROWS_SQL, model_run_id), _params(model_run_id, k, conf))
        cur.execute(_on_partitions(_UPDATE_ROW_CLASSES_SQL, model_run_id), _params(model_run_id, k, conf))


# --- Aggregation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMatches:
    """object_matches of a run as arrays (predictions ``p_*``, GT ``g_*``)."""

    p_row: NDArray[np.int64]
    p_id: NDArray[np.int64]
    p_cls: NDArray[np.int64]
    p_conf: NDArray[np.float64]
    p_tp_mask: NDArray[np.int64]
    p_ign_mask: NDArray[np.int64]
    p_area_masks: NDArray[np.int64]
    p_area: NDArray[np.float64]
    p_status_tp: NDArray[np.bool_]
    p_ignored: NDArray[np.bool_]
    p_partner_cls: NDArray[np.int64]
    p_tide: NDArray[np.int64]
    p_tide_fix: NDArray[np.int64]
    g_row: NDArray[np.int64]
    g_cls: NDArray[np.int64]
    g_area: NDArray[np.float64]
    g_crowd: NDArray[np.bool_]
    g_status_tp: NDArray[np.bool_]
    g_partnered: NDArray[np.bool_]
    g_tide_miss: NDArray[np.bool_]


_TIDE_CODE_SQL = (
    "CASE tide_error WHEN 'cls' THEN 1 WHEN 'loc' THEN 2 WHEN 'both' THEN 3 WHEN 'dupe' THEN 4"
    " WHEN 'bkg' THEN 5 WHEN 'miss' THEN 6 ELSE 0 END"
)


def load_matches(session: Session, model_run_id: int) -> StoredMatches:
    """The run's stored matches as arrays (binary COPY straight into numpy: millions of objects)."""
    part = partition("object_matches", model_run_id)
    with _pg(session).cursor() as cur:
        # Whole-run reads: allowed to take longer than a request's statement timeout.
        cur.execute("SET LOCAL statement_timeout = '600s'")
        # Small fields packed into one int8 per object (fewer values to send and parse):
        # tp_mask bits 0-9, ign_mask 10-19, status TP 20, ignored 21, TIDE code 22-24.
        p = pgcopy.copy_out_fixed(
            cur,
            "SELECT data_row_id, object_id, class_id, COALESCE(confidence, 'NaN'), area_masks,"
            " COALESCE(area, 'NaN'), CASE WHEN status = 'FP' THEN COALESCE(matched_object_id, -1) ELSE -1 END,"
            " COALESCE(tide_fix_class, -1),"
            " (tp_mask::int8 | (ign_mask::int8 << 10) | ((status = 'TP')::int::int8 << 20)"
            "  | (ignored::int::int8 << 21) | ((" + _TIDE_CODE_SQL + ")::int8 << 22))"
            f" FROM {part} WHERE model_run_id = %s::int8 AND kind = 'pred'",
            (model_run_id,),
            ["int8", "int8", "int8", "float8", "int8", "float8", "int8", "int8", "int8"],
        )
        # iscrowd bit 0, status TP 1, FN paired with a FP 2, TIDE miss 3.
        g = pgcopy.copy_out_fixed(
            cur,
            "SELECT data_row_id, class_id, COALESCE(area, 'NaN'), object_id,"
            " (iscrowd::int | ((status = 'TP')::int << 1)"
            "  | ((status = 'FN' AND matched_object_id IS NOT NULL)::int << 2)"
            "  | ((tide_error IS NOT DISTINCT FROM 'miss')::int << 3))::int8"
            f" FROM {part} WHERE model_run_id = %s::int8 AND kind = 'gt'",
            (model_run_id,),
            ["int8", "int8", "float8", "int8", "int8"],
        )
    return _stored_matches(p, g)


def _stored_matches(p: Sequence[NDArray[Any]], g: Sequence[NDArray[Any]]) -> StoredMatches:
    """StoredMatches from the packed columns (DIGEST_PRED / DIGEST_GT fields, in that order)."""
    i64 = np.int64
    p_row, p_id, p_cls, p_conf, p_masks, p_area, partner, p_fix, p_flags = (np.asarray(c) for c in p)
    g_row, g_cls, g_area, g_ids, g_flags = (np.asarray(c) for c in g)
    p_tp, p_ign = p_flags & 1023, (p_flags >> 10) & 1023
    p_is_tp, p_ignored, p_tide = (p_flags >> 20) & 1, (p_flags >> 21) & 1, (p_flags >> 22) & 7
    g_crowd, g_tp, g_partnered, g_miss = (
        g_flags & 1,
        (g_flags >> 1) & 1,
        (g_flags >> 2) & 1,
        (g_flags >> 3) & 1,
    )
    # The class of the GT a FP is paired with (confusion matrix), by id.
    g_order = np.argsort(g_ids)
    pos = np.searchsorted(g_ids[g_order], partner)
    pos = np.minimum(pos, max(len(g_ids) - 1, 0))
    found = (partner >= 0) & (len(g_ids) > 0)
    if len(g_ids):
        found &= g_ids[g_order][pos] == partner
    partner_cls = np.full(len(partner), -1, dtype=i64)
    if found.any():
        partner_cls[found] = g_cls[g_order[pos[found]]]
    return StoredMatches(
        p_row=p_row, p_id=p_id, p_cls=p_cls, p_conf=p_conf, p_tp_mask=p_tp, p_ign_mask=p_ign,
        p_area_masks=p_masks, p_area=p_area, p_status_tp=p_is_tp > 0, p_ignored=p_ignored > 0,
        p_partner_cls=partner_cls, p_tide=p_tide, p_tide_fix=p_fix,
        g_row=g_row, g_cls=g_cls, g_area=g_area, g_crowd=g_crowd > 0, g_status_tp=g_tp > 0,
        g_partnered=g_partnered > 0, g_tide_miss=g_miss > 0,
    )  # fmt: skip


# --- Match digests (shared/db/models/match_digest.py) ----------------------------------------------
# The same fields, with the same encodings, as load_matches' two queries.
DIGEST_PRED = np.dtype(
    [("row", "<i8"), ("id", "<i8"), ("cls", "<i8"), ("conf", "<f8"), ("masks", "<i8"), ("area", "<f8"),
     ("partner", "<i8"), ("fix", "<i8"), ("flags", "<i8")]
)  # fmt: skip
DIGEST_GT = np.dtype([("row", "<i8"), ("cls", "<i8"), ("area", "<f8"), ("id", "<i8"), ("flags", "<i8")])
_TIDE_CODES = {"cls": 1, "loc": 2, "both": 3, "dupe": 4, "bkg": 5, "miss": 6}


def digest_records(o: ObjectResults, keep: NDArray[np.bool_]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The (prediction, GT) digest records of the objects written (``keep``), equal field by field to
    what load_matches reads back from ``object_matches`` for them."""
    pred = keep & o.kind_is_pred
    gt = keep & ~o.kind_is_pred
    status = o.status
    tide = np.zeros(len(status), dtype=np.int64)
    for name, code in _TIDE_CODES.items():
        tide[o.tide_error == name] = code
    is_tp = (status == "TP").astype(np.int64)
    p = np.empty(int(pred.sum()), dtype=DIGEST_PRED)
    p["row"], p["id"], p["cls"] = o.data_row_id[pred], o.object_id[pred], o.class_id[pred]
    p["conf"], p["masks"], p["area"] = o.confidence[pred], o.area_masks[pred], o.area[pred]
    p["partner"] = np.where(status[pred] == "FP", o.matched_object_id[pred], -1)
    p["fix"] = o.tide_fix_class[pred]
    p["flags"] = (
        o.tp_mask[pred].astype(np.int64)
        | (o.ign_mask[pred].astype(np.int64) << 10)
        | (is_tp[pred] << 20)
        | (o.ignored[pred].astype(np.int64) << 21)
        | (tide[pred] << 22)
    )
    g = np.empty(int(gt.sum()), dtype=DIGEST_GT)
    g["row"], g["cls"], g["area"], g["id"] = o.data_row_id[gt], o.class_id[gt], o.area[gt], o.object_id[gt]
    g["flags"] = (
        o.iscrowd[gt].astype(np.int64)
        | (is_tp[gt] << 1)
        | (((status[gt] == "FN") & (o.matched_object_id[gt] != -1)).astype(np.int64) << 2)
        | ((o.tide_error[gt] == "miss").astype(np.int64) << 3)
    )
    return p, g


def write_digest(
    session: Session,
    model_run_id: int,
    row_ids: Sequence[int],
    member: Sequence[int],
    preds: NDArray[Any],
    gts: NDArray[Any],
) -> None:
    """After a row set's results were replaced: its digest becomes ``member`` with these records.

    Digests overlapping ``row_ids`` lose those rows (a digest left with none is deleted), so every row
    stays described by at most one digest, in the same transaction as its ``object_matches``.
    """
    rows = np.asarray(sorted(set(row_ids)), dtype=np.int64)
    if len(rows) == 0:
        return
    conn = _pg(session)
    old = conn.execute(
        "SELECT first_row, row_ids, preds, gts FROM match_digests WHERE model_run_id = %s::int8"
        " AND first_row <= %s::int8 AND last_row >= %s::int8 ORDER BY first_row FOR UPDATE",
        (model_run_id, int(rows[-1]), int(rows[0])),
        binary=True,
    ).fetchall()
    for first, raw_rows, raw_p, raw_g in old:
        covered = np.frombuffer(raw_rows, dtype="<i8")
        gone = np.isin(covered, rows)
        if not gone.any():
            continue
        conn.execute(
            "DELETE FROM match_digests WHERE model_run_id = %s::int8 AND first_row = %s::int8",
            (model_run_id, first),
        )
        rest = covered[~gone]
        if len(rest):
            p = np.frombuffer(raw_p, dtype=DIGEST_PRED)
            g = np.frombuffer(raw_g, dtype=DIGEST_GT)
            _insert_digest(conn, model_run_id, rest, p[~np.isin(p["row"], rows)], g[~np.isin(g["row"], rows)])
    if len(member):
        _insert_digest(conn, model_run_id, np.asarray(sorted(set(member)), dtype=np.int64), preds, gts)


def _insert_digest(
    conn: psycopg.Connection[Any],
    model_run_id: int,
    rows: NDArray[np.int64],
    p: NDArray[Any],
    g: NDArray[Any],
) -> None:
    conn.execute(
        "INSERT INTO match_digests (model_run_id, first_row, last_row, row_ids, preds, gts)"
        " VALUES (%s::int8, %s::int8, %s::int8, %b, %b, %b)",
        (
            model_run_id,
            int(rows[0]),
            int(rows[-1]),
            rows.astype("<i8").tobytes(),
            np.ascontiguousarray(p, dtype=DIGEST_PRED).tobytes(),
            np.ascontiguousarray(g, dtype=DIGEST_GT).tobytes(),
        ),
    )


def _native(records: NDArray[Any]) -> list[NDArray[Any]]:
    """Each field of little-endian records as a native int64/float64 array."""
    names = records.dtype.names or ()
    return [records[f].astype(np.float64 if records.dtype[f].kind == "f" else np.int64) for f in names]


def load_digest_matches(session: Session, model_run_id: int) -> StoredMatches | None:
    """The run's matches from its digests, or None unless they cover exactly the run's rows with
    results (each row once): then the caller reads ``object_matches`` (load_matches)."""
    conn = _pg(session)
    with conn.cursor(binary=True) as cur:  # bytea as raw bytes, not hex text to decode (~100 MB per 1M boxes)
        digests = cur.execute(
            "SELECT row_ids, preds, gts FROM match_digests WHERE model_run_id = %s::int8 ORDER BY first_row",
            (model_run_id,),
        ).fetchall()
    if not digests:
        return None
    with conn.cursor() as cur:
        (have,) = pgcopy.copy_out_fixed(
            cur,
            f"SELECT data_row_id FROM {partition('row_metrics', model_run_id)} WHERE model_run_id = %s::int8",
            (model_run_id,),
            ["int8"],
        )
    covered = np.concatenate([np.frombuffer(r, dtype="<i8") for r, _, _ in digests])
    if len(covered) != len(have) or not np.array_equal(np.sort(covered), np.sort(have)):
        log.warning(
            "match digests do not cover the run's rows: reading object_matches",
            model_run_id=model_run_id,
            digest_rows=len(covered),
            rows=len(have),
        )
        return None
    p = np.concatenate([np.frombuffer(raw, dtype=DIGEST_PRED) for _, raw, _ in digests])
    g = np.concatenate([np.frombuffer(raw, dtype=DIGEST_GT) for _, _, raw in digests])
    return stored_matches_from_digest(p, g)


def stored_matches_from_digest(preds: NDArray[Any], gts: NDArray[Any]) -> StoredMatches:
    """StoredMatches of digest records (DIGEST_PRED, DIGEST_GT)."""
    return _stored_matches(_native(preds), _native(gts))


CLASS_METRIC_COLUMNS = (
    "num_gt",
    "num_pred",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "ap",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar1",
    "ar10",
    "ar100",
    "best_conf_threshold",
    "best_f1",
    "pr_curve",
    "f1_curve",
    "tide",
)


def replace_class_metrics(
    session: Session, model_run_id: int, rows: list[dict[str, Any]], cells: list[tuple[str, int, int, int]]
) -> None:
    """Replace the run's class_metrics and confusion_cells; stamp ``aggregated_at``."""
    from psycopg.types.json import Jsonb

    cols = ["model_run_id", "split", "class_id", *CLASS_METRIC_COLUMNS]
    with _pg(session).cursor() as cur:
        cur.execute("DELETE FROM class_metrics WHERE model_run_id = %s", (model_run_id,))
        cur.execute("DELETE FROM confusion_cells WHERE model_run_id = %s", (model_run_id,))
        if rows:
            placeholders = ", ".join(["%s"] * len(cols))
            cur.executemany(
                f"INSERT INTO class_metrics ({', '.join(cols)}) VALUES ({placeholders})",
                [
                    [model_run_id, r["split"], r["class_id"]]
                    + [
                        Jsonb(r[c]) if c in ("pr_curve", "f1_curve", "tide") and r[c] is not None else r[c]
                        for c in CLASS_METRIC_COLUMNS
                    ]
                    for r in rows
                ],
            )
        if cells:
            cur.executemany(
                "INSERT INTO confusion_cells (model_run_id, split, gt_class_id, pred_class_id, count)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(model_run_id, s, g, p, n) for s, g, p, n in cells],
            )
        cur.execute("UPDATE model_runs SET aggregated_at = now() WHERE id = %s", (model_run_id,))


def run_status(session: Session, model_run_id: int) -> dict[str, Any] | None:
    run = session.execute(
        text(
            "SELECT r.id, r.aggregated_at, (SELECT count(*) FROM model_run_rows m WHERE m.model_run_id = r.id)"
            " FROM model_runs r WHERE r.id = :id"
        ),
        {"id": model_run_id},
    ).first()
    if run is None:
        return None
    conn = _pg(session)
    current = partitions.state(conn, model_run_id)
    done = 0
    if current != "missing":
        done = conn.execute(
            f"SELECT count(*) FROM {partition('row_metrics', model_run_id)} WHERE model_run_id = %s",
            (model_run_id,),
        ).fetchone()[0]  # type: ignore[index]
    return {
        "model_run_id": int(run[0]),
        "aggregated_at": run[1],
        "loading": current == "loading",
        "rows": int(run[2]),
        "rows_with_metrics": int(done),
    }
