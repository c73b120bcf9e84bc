"""Use cases of the metrics service. The caller (task wrapper) owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from services.metrics import domain, repository
from shared.db import partitions
from shared.metrics.rows import RowBatch, evaluate_rows, grid_index


@dataclass(frozen=True)
class ComputeRowsResult:
    model_run_id: int
    rows: int
    objects: int
    skipped: bool = False


def prepare_bulk_load(session: Session, model_run_id: int, min_rows: int) -> bool:
    """Before a row task's own transaction: switch a new large run to bulk loading (short transaction).

    True when this call switched it; the caller then refreshes the inputs' statistics
    (:func:`analyze_inputs`) in a transaction of its own.
    """
    return repository.prepare_bulk_load(session, model_run_id, min_rows)


def analyze_inputs(session: Session, model_run_id: int) -> None:
    repository.analyze_inputs(session, model_run_id)


def finish_bulk_load(conninfo: str, model_run_id: int, parallel: int) -> bool:
    """Index, analyze and attach a bulk-loaded run's tables (no-op otherwise)."""
    return partitions.finish_bulk_load(conninfo, model_run_id, parallel)


def start_index_build(conninfo: str, model_run_id: int, parallel: int) -> partitions.IndexBuild | None:
    """A bulk-loaded run's index builds, started in the background (None when not loading)."""
    return partitions.start_index_build(conninfo, model_run_id, parallel)


def attach_bulk_load(session: Session, build: partitions.IndexBuild, model_run_id: int) -> bool:
    """Wait for the index builds, then attach the run's tables in this session's transaction."""
    build.wait()
    return partitions.attach(repository.driver_connection(session), model_run_id)


def compute_rows(session: Session, model_run_id: int, data_row_ids: list[int]) -> ComputeRowsResult:
    """Match and score these rows of the run; replace their object/row/row-class metrics.

    Idempotent: the row set's previous results are deleted and the new ones written in the same
    transaction (a redelivered task rewrites identical rows); a concurrent duplicate waits on an
    advisory lock of the row set.
    """
    run = repository.lock_run_shared(session, model_run_id)
    if run is None:
        return ComputeRowsResult(model_run_id, 0, 0, skipped=True)
    row_ids = sorted(set(data_row_ids))
    repository.lock_row_set(session, model_run_id, row_ids)
    split_of = repository.run_row_splits(session, model_run_id, row_ids)
    member = [r for r in row_ids if r in split_of]
    repository.delete_row_results(session, model_run_id, row_ids)
    if not member:
        none_p, none_g = np.empty(0, repository.DIGEST_PRED), np.empty(0, repository.DIGEST_GT)
        repository.write_digest(session, model_run_id, row_ids, [], none_p, none_g)
        return ComputeRowsResult(model_run_id, 0, 0)
    batch = repository.load_batch(session, model_run_id, member)
    ev = evaluate_rows(batch, run.iou_threshold, run.confidence_threshold)
    keep = np.ones(len(ev.objects.object_id), dtype=bool)
    repository.copy_objects(session, model_run_id, ev.objects, keep)
    repository.copy_row_metrics(session, model_run_id, ev.rows, split_of)
    repository.copy_row_class_metrics(session, model_run_id, ev.row_classes, split_of)
    # The aggregation's input, packed (match digests): same transaction as the rows above.
    preds, gts = repository.digest_records(ev.objects, keep)
    repository.write_digest(session, model_run_id, row_ids, member, preds, gts)
    return ComputeRowsResult(model_run_id, len(member), int(keep.sum()))


_ROW_COUNTS: dict[int, int] = {}  # run -> its row count when last looked up (a row count only grows)


def bulk_load_complete(session: Session, model_run_id: int) -> bool:
    """Whether the run is bulk loading its first computation and every row of it now has results.

    Then no burst of row tasks is left to wait for: the aggregation (which builds the indexes and
    attaches the tables) may start at once. Any other burst -- new rows, a threshold change's refresh
    of an attached run -- keeps the debounce. Cheap on every call but the last few of a load: the
    digests' stored lengths are compared with the run's row count as this process last counted it,
    recounted only when they reach it. A scheduling hint, never a correctness condition.
    """
    if partitions.state(repository.driver_connection(session), model_run_id) != "loading":
        return False
    done = repository.digest_row_count(session, model_run_id)
    if done < _ROW_COUNTS.get(model_run_id, 1):
        return False
    _ROW_COUNTS[model_run_id] = repository.run_row_count(session, model_run_id)
    return done == _ROW_COUNTS[model_run_id] > 0


@dataclass(frozen=True)
class AggregateResult:
    model_run_id: int
    classes: int
    cells: int
    rows_recomputed_by_sql: bool
    rows_to_recompute: list[list[int]]


def aggregate_run(
    session: Session,
    model_run_id: int,
    *,
    thresholds_changed: bool = False,
    chunk_rows: int = domain.ROW_CHUNK,
) -> AggregateResult:
    """Per-class metrics and confusion cells of every split, from stored matches.

    After a threshold change the per-row numbers are first rewritten by SQL from ``object_matches``
    (IoU on the COCO grid); per-object statuses, TIDE types and the Labelbox family at the new
    thresholds need matching again: their row chunks are returned for the caller to enqueue.
    """
    run = repository.get_run(session, model_run_id)
    if run is None:
        return AggregateResult(model_run_id, 0, 0, False, [])
    repository.lock_aggregation(session, model_run_id)
    by_sql = False
    refresh: list[list[int]] = []
    if thresholds_changed:
        k = grid_index(run.iou_threshold)
        if k is not None:
            repository.update_row_metrics_at(session, model_run_id, k, run.confidence_threshold)
            by_sql = True
        refresh = domain.chunks(repository.run_row_ids(session, model_run_id), chunk_rows)
    split_of = repository.run_row_splits(session, model_run_id, None)
    matches = repository.load_digest_matches(session, model_run_id)
    if matches is None:
        matches = repository.load_matches(session, model_run_id)
    rows, cells = domain.class_metrics(matches, split_of, run.iou_threshold, run.confidence_threshold)
    repository.replace_class_metrics(session, model_run_id, rows, cells)
    return AggregateResult(model_run_id, len(rows), len(cells), by_sql, refresh)


def warm_kernels() -> None:
    """Load (or compile) the numba kernels of a row task and of an aggregation on a two-row batch.

    A new worker process otherwise pays ~0.9 s of kernel loading inside its first task (cached
    machine code read back and linked); a worker calls this in a background thread at start.
    """
    i64, f64 = np.int64, np.float64
    batch = RowBatch(
        row_ids=np.array([1, 2], dtype=i64),
        pred_id=np.array([1, 2, 3], dtype=i64),
        pred_row=np.array([1, 1, 2], dtype=i64),
        pred_cls=np.array([1, 2, 1], dtype=i64),
        pred_box=np.array([[0, 0, 10, 10], [1, 1, 10, 10], [5, 5, 4, 4]], dtype=f64),
        pred_score=np.array([0.9, 0.8, 0.7], dtype=f64),
        gt_id=np.array([1, 2], dtype=i64),
        gt_row=np.array([1, 2], dtype=i64),
        gt_cls=np.array([1, 2], dtype=i64),
        gt_box=np.array([[0, 0, 10, 10], [0, 0, 3, 3]], dtype=f64),
        gt_area=np.array([100.0, 9.0], dtype=f64),
        gt_crowd=np.array([False, False]),
    )
    ev = evaluate_rows(batch, 0.5, 0.25)
    preds, gts = repository.digest_records(ev.objects, np.ones(len(ev.objects.object_id), dtype=bool))
    matches = repository.stored_matches_from_digest(preds, gts)
    domain.class_metrics(matches, {1: "train", 2: "validation"}, 0.5, 0.25)


def run_status(session: Session, model_run_id: int) -> dict[str, Any] | None:
    return repository.run_status(session, model_run_id)
