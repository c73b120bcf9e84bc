"""Bulk first computation of a run (shared/db/partitions.py) on a real Postgres.

A large run's results are written into detached loading tables and attached, with every index of the
parents, when the run is aggregated. Checked: the run is invisible through the parents while loading;
after attaching, every parent index has its partition and the stored numbers equal those of the
ordinary (attached, indexed) path on the same run; a row task that arrives after the attach still lands;
a run that already has results is never switched.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import domain, repository, service, tasks
from shared.contracts.tasks import TaskName
from shared.db import partitions
from tests.fixtures.metrics import SeededRun, libpq, reset_run_results, seed_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(db_url: str) -> SeededRun:
    return seed_run(db_url, 240, seed=11, crowd_frac=0.03, empty_rows=4)


def _snapshot(factory: sessionmaker[Session], run_id: int) -> dict[str, list[Any]]:
    with factory() as s:
        return {
            "rows": [tuple(r) for r in s.execute(
                text("SELECT * FROM row_metrics WHERE model_run_id = :r ORDER BY data_row_id"), {"r": run_id}
            )],
            "row_classes": [tuple(r) for r in s.execute(
                text("SELECT * FROM row_class_metrics WHERE model_run_id = :r ORDER BY data_row_id, class_id"),
                {"r": run_id},
            )],
            "objects": [tuple(r) for r in s.execute(
                text("SELECT * FROM object_matches WHERE model_run_id = :r ORDER BY kind, object_id"),
                {"r": run_id},
            )],
            "classes": [tuple(r) for r in s.execute(
                text(
                    "SELECT * FROM class_metrics WHERE model_run_id = :r ORDER BY split, class_id"
                ),
                {"r": run_id},
            )],
        }  # fmt: skip


def _state(db_url: str, run_id: int) -> str:
    with psycopg.connect(libpq(db_url)) as conn:
        return partitions.state(conn, run_id)


def _indexes(db_url: str, run_id: int) -> dict[str, list[str]]:
    """The parent index (or primary key) behind each index of the run's tables, by table."""
    out: dict[str, list[str]] = {}
    with psycopg.connect(libpq(db_url)) as conn:
        for table in partitions.RESULT_TABLES:
            part = partitions.partition(table, run_id)
            names = conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = CAST(%s AS regclass) ORDER BY 1",
                (part,),
            ).fetchall()
            out[table] = [
                n.replace(f"{part}_pkey", f"{table}_pkey").removesuffix(f"_r{run_id}") for (n,) in names
            ]
    return out


def _pkey_indexes(db_url: str, run_id: int) -> dict[str, int]:
    """Table -> oid of the run's ``<table>_r<id>_pkey`` unique index that is not yet a constraint."""
    with psycopg.connect(libpq(db_url)) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.oid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE c.relname = ANY(%s) AND i.indisunique"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
            ([f"{partitions.partition(t, run_id)}_pkey" for t in partitions.RESULT_TABLES],),
        ).fetchall()
    return {name.rsplit("_r", 1)[0]: int(oid) for name, oid in rows}


def _compute(factory: sessionmaker[Session], run: SeededRun, rows: list[int], chunk: int = 60) -> None:
    for part in domain.chunks(rows, chunk):
        with factory.begin() as s:
            service.compute_rows(s, run.model_run_id, part)


def _expected_then_loading(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> dict[str, list[Any]]:
    """The run's tables computed on the ordinary (attached) path; then emptied and switched to loading."""
    rid = run.model_run_id
    with factory.begin() as s:
        service.compute_rows(s, rid, run.row_ids)
        service.aggregate_run(s, rid)
    expected = _snapshot(factory, rid)
    reset_run_results(db_url, rid)
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is True
    return expected


def _aggregate(db_url: str, factory: sessionmaker[Session], run_id: int) -> bool:
    attached = service.finish_bulk_load(libpq(db_url), run_id, parallel=2)
    with factory.begin() as s:
        service.aggregate_run(s, run_id)
    return attached


def test_bulk_load_equals_the_indexed_path(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    rid = run.model_run_id
    # The ordinary path: below the threshold nothing is switched.
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=len(run.row_ids) + 1) is False
    _compute(factory, run, run.row_ids)
    assert _aggregate(db_url, factory, rid) is False
    expected = _snapshot(factory, rid)
    assert len(expected["rows"]) == len(run.row_ids) and expected["objects"]

    # Results present: never switched, whatever the threshold.
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is False

    reset_run_results(db_url, rid)
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is True
    assert _state(db_url, rid) == "loading"
    with factory.begin() as s:  # a second worker's call: already loading, nothing to do
        assert service.prepare_bulk_load(s, rid, min_rows=1) is False
        service.analyze_inputs(s, rid)
    _compute(factory, run, run.row_ids)

    with factory() as s:
        status = service.run_status(s, rid)
        visible = s.execute(
            text("SELECT count(*) FROM row_metrics WHERE model_run_id = :r"), {"r": rid}
        ).scalar()
    assert status is not None and status["loading"] is True
    assert status["rows_with_metrics"] == len(run.row_ids)
    assert visible == 0  # the gallery does not see a run while it loads
    with factory() as s:  # every row loaded: the aggregation need not wait for more row tasks
        assert service.bulk_load_complete(s, rid) is True

    assert _aggregate(db_url, factory, rid) is True
    assert _state(db_url, rid) == "attached"
    with factory() as s:  # attached: a later burst (new rows, a threshold refresh) keeps the debounce
        assert service.bulk_load_complete(s, rid) is False
    assert _snapshot(factory, rid) == expected
    with factory() as s:
        for table in partitions.RESULT_TABLES:
            missing = s.execute(
                text(
                    "SELECT pi.indexrelid::regclass::text FROM pg_index pi"
                    " WHERE pi.indrelid = CAST(:t AS regclass) AND NOT EXISTS ("
                    "  SELECT 1 FROM pg_inherits ih JOIN pg_index ci ON ci.indexrelid = ih.inhrelid"
                    "  WHERE ih.inhparent = pi.indexrelid AND ci.indrelid = CAST(:p AS regclass))"
                ),
                {"t": table, "p": partitions.partition(table, rid)},
            ).all()
            assert missing == [], table
        status = service.run_status(s, rid)
    assert status is not None and status["loading"] is False


def test_rows_after_the_attach_still_land(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    """An aggregation that runs before the last row task (slow worker) attaches early; later rows are
    written into the attached partition and the next aggregation counts them."""
    rid = run.model_run_id
    expected = _expected_then_loading(db_url, factory, run)
    half = len(run.row_ids) // 2
    _compute(factory, run, run.row_ids[:half])
    with factory() as s:
        assert service.bulk_load_complete(s, rid) is False  # half of the rows still to come
    assert _aggregate(db_url, factory, rid) is True
    _compute(factory, run, run.row_ids[half:])
    assert _aggregate(db_url, factory, rid) is False
    assert _snapshot(factory, rid) == expected


def test_threshold_change_reads_the_loading_tables(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    """The SQL threshold path addresses the run's own tables, so it sees rows while they are detached."""
    rid = run.model_run_id
    reset_run_results(db_url, rid)
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is True
    _compute(factory, run, run.row_ids)
    with factory() as s:
        at = repository.row_metrics_at(s, rid, 0, 0.0)
    assert len([r for r in at if r[1] is None]) == len(run.row_ids) - 4  # rows without any box have none
    _aggregate(db_url, factory, rid)


def test_indexes_build_while_the_aggregation_runs(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    """The task's path: index builds start, the aggregation reads the loading tables meanwhile, and the
    attach happens in the aggregation's transaction (nothing visible before its commit)."""
    rid = run.model_run_id
    reset_run_results(db_url, rid)
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is True
    _compute(factory, run, run.row_ids)
    # While loading, only the indexes that find a row set's rows are kept up to date.
    assert _indexes(db_url, rid) == {
        "object_matches": ["ix_object_matches_run_row"],
        "row_class_metrics": ["ix_row_class_metrics_run_row"],
        "row_metrics": ["row_metrics_pkey"],
    }
    build = service.start_index_build(libpq(db_url), rid, parallel=2)
    assert build is not None
    build.wait()  # (wait() may be called again: attach_bulk_load does)
    built = _pkey_indexes(db_url, rid)
    assert built.keys() == {"object_matches", "row_class_metrics"}  # unique indexes, no constraints yet
    with factory.begin() as s:
        service.aggregate_run(s, rid)
        assert service.attach_bulk_load(s, build, rid) is True
        with factory() as other:  # another session: the attach is not committed yet
            assert (
                other.execute(
                    text("SELECT count(*) FROM row_metrics WHERE model_run_id = :r"), {"r": rid}
                ).scalar()
                == 0
            )
    assert _state(db_url, rid) == "attached"
    with factory() as s:
        n = s.execute(text("SELECT count(*) FROM row_metrics WHERE model_run_id = :r"), {"r": rid}).scalar()
        classes = s.execute(
            text("SELECT count(*) FROM class_metrics WHERE model_run_id = :r"), {"r": rid}
        ).scalar()
    assert n == len(run.row_ids) and classes
    assert service.start_index_build(libpq(db_url), rid, parallel=2) is None
    # The deferred primary keys are the unique indexes built before the attach, not rebuilt under its lock.
    with psycopg.connect(libpq(db_url)) as conn:
        for table, index_oid in built.items():
            key = conn.execute(
                "SELECT conindid FROM pg_constraint WHERE contype = 'p' AND conrelid = CAST(%s AS regclass)",
                (partitions.partition(table, rid),),
            ).fetchone()
            assert key is not None and key[0] == index_oid, table


def test_overlapping_row_sets_replace_rows_while_loading(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    """A loading table has no primary key on objects: a row set that overlaps one already written (a
    re-enqueue with other chunks) must replace the shared rows through the ``data_row_id`` index, not
    add them twice; the primary keys built at the end would fail on a duplicate."""
    rid = run.model_run_id
    reset_run_results(db_url, rid)
    expected = _expected_then_loading(db_url, factory, run)
    _compute(factory, run, run.row_ids, chunk=80)
    _compute(factory, run, run.row_ids[40:], chunk=80)  # every row from the 41st again, other chunks
    assert _aggregate(db_url, factory, rid) is True
    assert _snapshot(factory, rid) == expected


def test_concurrent_overlapping_row_sets_conflict_while_loading(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    """Two overlapping row sets in flight at once each see nothing to replace. ``row_metrics`` keeps its
    primary key while loading (one row per member row of every row set), so the second to commit fails
    with a unique violation, which the row task retries (it then replaces the first one's rows), instead
    of both committing the shared rows' objects."""
    import threading

    rid = run.model_run_id
    reset_run_results(db_url, rid)
    with factory.begin() as s:
        assert service.prepare_bulk_load(s, rid, min_rows=1) is True
    first, second = run.row_ids[:60], run.row_ids[30:90]
    s1 = factory()
    service.compute_rows(s1, rid, first)  # written, not committed
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with factory.begin() as s2:
                service.compute_rows(s2, rid, second)  # waits on the first's uncommitted keys
        except BaseException as exc:  # the assertion below says which
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(1.0)
    assert t.is_alive()  # blocked on the shared rows' keys
    s1.commit()
    s1.close()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.UniqueViolation), errors
    row_task = tasks.app.tasks[TaskName.metrics_compute_rows.value]
    assert isinstance(errors[0], tuple(row_task.autoretry_for))  # the row task runs again
    with factory.begin() as s:  # the retry
        service.compute_rows(s, rid, second)
    _compute(factory, run, run.row_ids[90:])
    assert _aggregate(db_url, factory, rid) is True
    with factory() as s:
        n = s.execute(
            text("SELECT count(*) FROM object_matches WHERE model_run_id = :r"), {"r": rid}
        ).scalar()
        m = s.execute(text("SELECT count(*) FROM row_metrics WHERE model_run_id = :r"), {"r": rid}).scalar()
    assert m == len(run.row_ids)
    with factory.begin() as s:  # the same numbers as one clean computation
        service.compute_rows(s, rid, run.row_ids)
    with factory() as s:
        assert (
            s.execute(
                text("SELECT count(*) FROM object_matches WHERE model_run_id = :r"), {"r": rid}
            ).scalar()
            == n
        )
