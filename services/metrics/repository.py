"""Every SQL statement of the metrics service.

Bulk paths use psycopg directly on the session's connection (same transaction): ``COPY ... (FORMAT
BINARY)`` for writes, plain fetches turned into numpy arrays for reads.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.metrics.rows import ObjectResults, RowBatch, RowTable

ERROR_COLUMNS = ("cls", "loc", "both", "dupe", "bkg", "miss")


def _pg(session: Session) -> psycopg.Connection[Any]:
    return session.connection().connection.driver_connection  # type: ignore[return-value]


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


def run_row_splits(session: Session, model_run_id: int, row_ids: Sequence[int] | None) -> dict[int, str]:
    """Split of each row of the run (only rows that belong to it)."""
    with _pg(session).cursor() as cur:
        if row_ids is None:
            cur.execute(
                "SELECT data_row_id, split FROM model_run_rows WHERE model_run_id = %s", (model_run_id,)
            )
        else:
            cur.execute(
                "SELECT data_row_id, split FROM model_run_rows WHERE model_run_id = %s"
                " AND data_row_id = ANY(%s)",
                (model_run_id, list(row_ids)),
            )
        return {int(r): str(s) for r, s in cur.fetchall()}


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
        cur.execute(
            "SELECT id, data_row_id, class_id, x, y, w, h, confidence FROM predictions"
            " WHERE model_run_id = %s AND data_row_id = ANY(%s)",
            (model_run_id, ids),
        )
        p = _array(cur.fetchall(), 8)
        cur.execute(
            "SELECT id, data_row_id, class_id, x, y, w, h, area, iscrowd::int FROM annotations"
            " WHERE data_row_id = ANY(%s)",
            (ids,),
        )
        g = _array(cur.fetchall(), 9)
    return RowBatch(
        row_ids=np.asarray(ids, dtype=np.int64),
        pred_id=p[:, 0].astype(np.int64),
        pred_row=p[:, 1].astype(np.int64),
        pred_cls=p[:, 2].astype(np.int64),
        pred_box=np.ascontiguousarray(p[:, 3:7]),
        pred_score=p[:, 7].copy(),
        gt_id=g[:, 0].astype(np.int64),
        gt_row=g[:, 1].astype(np.int64),
        gt_cls=g[:, 2].astype(np.int64),
        gt_box=np.ascontiguousarray(g[:, 3:7]),
        gt_area=g[:, 7].copy(),
        gt_crowd=g[:, 8] > 0,
    )


def delete_row_results(session: Session, model_run_id: int, row_ids: Sequence[int]) -> None:
    ids = list(row_ids)
    with _pg(session).cursor() as cur:
        for table in ("object_matches", "row_class_metrics", "row_metrics"):
            cur.execute(
                f"DELETE FROM {table} WHERE model_run_id = %s AND data_row_id = ANY(%s)",
                (model_run_id, ids),
            )


def _floats(a: NDArray[np.float64]) -> list[float | None]:
    return [None if v != v else v for v in a.tolist()]


def _ints_or_null(a: NDArray[np.int64], null: int = -1) -> list[int | None]:
    return [None if v == null else v for v in a.tolist()]


def _copy(
    session: Session, table: str, columns: Sequence[str], types: Sequence[str], data: Sequence[Iterable[Any]]
) -> None:
    with (
        _pg(session).cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as cp,
    ):
        cp.set_types(list(types))
        for row in zip(*data, strict=True):
            cp.write_row(row)


OBJECT_COLUMNS = (
    ("model_run_id", "int8"),
    ("kind", "text"),
    ("object_id", "int8"),
    ("data_row_id", "int8"),
    ("class_id", "int8"),
    ("confidence", "float8"),
    ("status", "text"),
    ("matched_object_id", "int8"),
    ("iou", "float8"),
    ("error_type", "text"),
    ("tp_mask", "int2"),
    ("area", "float8"),
    ("iscrowd", "bool"),
    ("ignored", "bool"),
    ("ign_mask", "int2"),
    ("area_masks", "int8"),
    ("match_iou", "float8"),
    ("match_ious", "float8[]"),
    ("tide_error", "text"),
    ("tide_fix_class", "int8"),
)


def copy_objects(session: Session, model_run_id: int, o: ObjectResults, keep: NDArray[np.bool_]) -> None:
    """COPY the objects selected by ``keep`` into ``object_matches``."""
    n = int(keep.sum())
    sel = np.nonzero(keep)[0]
    mi = o.match_ious[sel]
    has = o.has_match_ious[sel]
    match_ious: list[list[float | None] | None] = [
        [None if v != v else v for v in row] if h else None
        for row, h in zip(mi.tolist(), has.tolist(), strict=True)
    ]
    data: list[Iterable[Any]] = [
        [model_run_id] * n,
        np.where(o.kind_is_pred[sel], "pred", "gt").tolist(),
        o.object_id[sel].tolist(),
        o.data_row_id[sel].tolist(),
        o.class_id[sel].tolist(),
        _floats(o.confidence[sel]),
        o.status[sel].tolist(),
        _ints_or_null(o.matched_object_id[sel]),
        _floats(o.iou[sel]),
        o.error_type[sel].tolist(),
        o.tp_mask[sel].tolist(),
        _floats(o.area[sel]),
        o.iscrowd[sel].tolist(),
        o.ignored[sel].tolist(),
        o.ign_mask[sel].tolist(),
        o.area_masks[sel].tolist(),
        _floats(o.match_iou[sel]),
        match_ious,
        o.tide_error[sel].tolist(),
        _ints_or_null(o.tide_fix_class[sel]),
    ]
    _copy(session, "object_matches", [c for c, _ in OBJECT_COLUMNS], [t for _, t in OBJECT_COLUMNS], data)


_METRIC_COLUMNS = (
    ("split", "text"),
    ("num_gt", "int4"),
    ("num_pred", "int4"),
    ("tp", "int4"),
    ("fp", "int4"),
    ("fn", "int4"),
    ("precision", "float8"),
    ("recall", "float8"),
    ("f1", "float8"),
    ("mean_iou", "float8"),
    ("min_conf", "float8"),
    ("mean_conf", "float8"),
    ("max_conf", "float8"),
    ("lb_iou", "float8"),
    ("lb_tp", "int4"),
    ("lb_fp", "int4"),
    ("lb_fn", "int4"),
    *((f"n_{e}", "int4") for e in ERROR_COLUMNS),
)


def _metric_data(t: RowTable, sel: NDArray[np.int64], splits: list[str]) -> list[Iterable[Any]]:
    def lb(a: NDArray[np.float64]) -> list[int | None]:
        return [None if v != v else int(v) for v in a[sel].tolist()]

    return [
        splits,
        t.num_gt[sel].tolist(),
        t.num_pred[sel].tolist(),
        t.tp[sel].tolist(),
        t.fp[sel].tolist(),
        t.fn[sel].tolist(),
        _floats(t.precision[sel]),
        _floats(t.recall[sel]),
        _floats(t.f1[sel]),
        _floats(t.mean_iou[sel]),
        _floats(t.min_conf[sel]),
        _floats(t.mean_conf[sel]),
        _floats(t.max_conf[sel]),
        _floats(t.lb_iou[sel]),
        lb(t.lb_tp),
        lb(t.lb_fp),
        lb(t.lb_fn),
        *(t.n_err[e][sel].tolist() for e in ERROR_COLUMNS),
    ]


def copy_row_metrics(session: Session, model_run_id: int, t: RowTable, split_of: dict[int, str]) -> None:
    sel = np.array([i for i, r in enumerate(t.data_row_id.tolist()) if r in split_of], dtype=np.int64)
    rows = t.data_row_id[sel].tolist()
    data: list[Iterable[Any]] = [
        [model_run_id] * len(sel),
        rows,
        (t.num_gt[sel] > 0).tolist(),
        (t.num_pred[sel] > 0).tolist(),
        *_metric_data(t, sel, [split_of[r] for r in rows]),
    ]
    cols = ["model_run_id", "data_row_id", "has_gt", "has_pred", *(c for c, _ in _METRIC_COLUMNS)]
    types = ["int8", "int8", "bool", "bool", *(ty for _, ty in _METRIC_COLUMNS)]
    _copy(session, "row_metrics", cols, types, data)


def copy_row_class_metrics(
    session: Session, model_run_id: int, t: RowTable, split_of: dict[int, str]
) -> None:
    assert t.class_id is not None
    sel = np.array([i for i, r in enumerate(t.data_row_id.tolist()) if r in split_of], dtype=np.int64)
    rows = t.data_row_id[sel].tolist()
    data: list[Iterable[Any]] = [
        [model_run_id] * len(sel),
        t.class_id[sel].tolist(),
        rows,
        *_metric_data(t, sel, [split_of[r] for r in rows]),
    ]
    cols = ["model_run_id", "class_id", "data_row_id", *(c for c, _ in _METRIC_COLUMNS)]
    types = ["int8", "int8", "int8", *(ty for _, ty in _METRIC_COLUMNS)]
    _copy(session, "row_class_metrics", cols, types, data)


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


def row_metrics_at(session: Session, model_run_id: int, k: int, conf: float) -> list[tuple[Any, ...]]:
    """Rows of ``ROW_METRICS_AT_SQL``: (data_row_id, class_id or None, num_gt, ..., max_conf)."""
    with _pg(session).cursor() as cur:
        cur.execute(ROW_METRICS_AT_SQL, _params(model_run_id, k, conf))
        return list(cur.fetchall())


def _params(model_run_id: int, k: int, conf: float) -> dict[str, Any]:
    return {"run": model_run_id, "k1": k + 1, "bit": 1 << k, "conf": conf}


def update_row_metrics_at(session: Session, model_run_id: int, k: int, conf: float) -> None:
    """The cheap path of a threshold change: rewrite the stored per-row numbers from object_matches."""
    with _pg(session).cursor() as cur:
        cur.execute(_UPDATE_ROWS_SQL, _params(model_run_id, k, conf))
        cur.execute(_UPDATE_ROW_CLASSES_SQL, _params(model_run_id, k, conf))


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
    i64 = np.int64
    with _pg(session).cursor() as cur:
        # Whole-run reads: allowed to take longer than a request's statement timeout.
        cur.execute("SET LOCAL statement_timeout = '600s'")
        cur.execute(
            "SELECT data_row_id, object_id, class_id, confidence, tp_mask, ign_mask,"
            " area_masks & 1048575, (area_masks >> 20) & 1048575, area_masks >> 40, area,"
            " (status = 'TP')::int, ignored::int,"
            " CASE WHEN status = 'FP' THEN COALESCE(matched_object_id, -1) ELSE -1 END,"
            " " + _TIDE_CODE_SQL + ", COALESCE(tide_fix_class, -1)"
            " FROM object_matches WHERE model_run_id = %s AND kind = 'pred'",
            (model_run_id,),
        )
        p = cur.fetchall()
        cur.execute(
            "SELECT data_row_id, class_id, area, iscrowd::int, (status = 'TP')::int,"
            " (status = 'FN' AND matched_object_id IS NOT NULL)::int, (tide_error = 'miss')::int, object_id"
            " FROM object_matches WHERE model_run_id = %s AND kind = 'gt'",
            (model_run_id,),
        )
        g = cur.fetchall()
    # Float64 holds every column exactly (ids < 2**53; the 60-bit area masks come as three 20-bit parts).
    pa = np.asarray(p, dtype=np.float64).reshape(-1, 15) if p else np.zeros((0, 15))
    area_masks = pa[:, 6].astype(i64) | (pa[:, 7].astype(i64) << 20) | (pa[:, 8].astype(i64) << 40)
    pa = np.delete(pa, [7, 8], axis=1)
    ga = np.asarray(g, dtype=np.float64).reshape(-1, 8) if g else np.zeros((0, 8))
    # The class of the GT a FP is paired with (confusion matrix), by id.
    g_ids = ga[:, 7].astype(i64)
    g_order = np.argsort(g_ids)
    partner = pa[:, 10].astype(i64)
    pos = np.searchsorted(g_ids[g_order], partner)
    pos = np.minimum(pos, max(len(g_ids) - 1, 0))
    found = (partner >= 0) & (len(g_ids) > 0)
    if len(g_ids):
        found &= g_ids[g_order][pos] == partner
    partner_cls = np.full(len(partner), -1, dtype=i64)
    if found.any():
        partner_cls[found] = ga[g_order[pos[found]], 1].astype(i64)
    return StoredMatches(
        p_row=pa[:, 0].astype(i64), p_id=pa[:, 1].astype(i64), p_cls=pa[:, 2].astype(i64),
        p_conf=pa[:, 3].copy(), p_tp_mask=pa[:, 4].astype(i64), p_ign_mask=pa[:, 5].astype(i64),
        p_area_masks=area_masks, p_area=pa[:, 7].copy(), p_status_tp=pa[:, 8] > 0,
        p_ignored=pa[:, 9] > 0, p_partner_cls=partner_cls, p_tide=pa[:, 11].astype(i64),
        p_tide_fix=pa[:, 12].astype(i64),
        g_row=ga[:, 0].astype(i64), g_cls=ga[:, 1].astype(i64), g_area=ga[:, 2].copy(),
        g_crowd=ga[:, 3] > 0, g_status_tp=ga[:, 4] > 0, g_partnered=ga[:, 5] > 0,
        g_tide_miss=ga[:, 6] > 0,
    )  # fmt: skip


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
    row = session.execute(
        text(
            "SELECT r.id, r.aggregated_at,"
            " (SELECT count(*) FROM model_run_rows m WHERE m.model_run_id = r.id),"
            " (SELECT count(*) FROM row_metrics x WHERE x.model_run_id = r.id)"
            " FROM model_runs r WHERE r.id = :id"
        ),
        {"id": model_run_id},
    ).first()
    if row is None:
        return None
    return {
        "model_run_id": int(row[0]),
        "aggregated_at": row[1],
        "rows": int(row[2]),
        "rows_with_metrics": int(row[3]),
    }
