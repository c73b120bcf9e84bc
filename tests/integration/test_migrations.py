from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from shared.db import migrate
from shared.db.base import RUN_PARTITIONS, Base
from shared.db.partitions import RESULT_TABLES

pytestmark = pytest.mark.integration


def test_migrations_up_down_up(db_url: str) -> None:
    u = make_url(db_url)
    url = u.set(database=f"{u.database}_updown").render_as_string(hide_password=False)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
    try:
        migrate.upgrade(url)
        eng = create_engine(url)
        tables = set(inspect(eng).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert {f"predictions_p{i}" for i in range(RUN_PARTITIONS)} <= tables
        migrate.downgrade(url)
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert set(Base.metadata.tables) <= set(inspect(eng).get_table_names())
        eng.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


def _run(conn, name: str) -> int:  # type: ignore[no-untyped-def]
    ws = conn.execute(text("INSERT INTO workspaces (name) VALUES (:n) RETURNING id"), {"n": name}).scalar()
    return int(
        conn.execute(
            text("INSERT INTO model_runs (workspace_id, name) VALUES (:w, :n) RETURNING id"),
            {"w": ws, "n": name},
        ).scalar()
    )


def test_partition_pruning_by_run(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        runs = [_run(conn, f"prune-{i}") for i in range(3)]
        plan = "\n".join(
            r[0]
            for r in conn.execute(text(f"EXPLAIN SELECT * FROM row_metrics WHERE model_run_id = {runs[1]}"))
        )
        conn.rollback()
    assert set(re.findall(r"on (row_metrics_r\d+)", plan)) == {f"row_metrics_r{runs[1]}"}, plan


def test_new_run_gets_its_partitions_with_every_index(engine) -> None:  # type: ignore[no-untyped-def]
    """The model_runs trigger creates each result table's partition, attached, indexed like its parent."""
    with engine.connect() as conn:
        run = _run(conn, "partitions")
        for table in RESULT_TABLES:
            part = f"{table}_r{run}"
            bound = conn.execute(
                text(
                    "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c JOIN pg_inherits i"
                    " ON i.inhrelid = c.oid WHERE c.relname = :p AND i.inhparent = CAST(:t AS regclass)"
                ),
                {"p": part, "t": table},
            ).scalar()
            assert bound == f"FOR VALUES IN ('{run}')"
            # Every partitioned index of the parent has its partition on the run's table.
            missing = conn.execute(
                text(
                    "SELECT pi.indexrelid::regclass::text FROM pg_index pi"
                    " WHERE pi.indrelid = CAST(:t AS regclass) AND NOT EXISTS ("
                    "  SELECT 1 FROM pg_inherits ih JOIN pg_index ci ON ci.indexrelid = ih.inhrelid"
                    "  WHERE ih.inhparent = pi.indexrelid AND ci.indrelid = CAST(:p AS regclass))"
                ),
                {"t": table, "p": part},
            ).all()
            assert missing == []
        conn.rollback()
        assert conn.execute(text("SELECT to_regclass(:p)"), {"p": f"row_metrics_r{run}"}).scalar() is None


def test_upgrade_moves_existing_results_into_run_partitions(db_url: str) -> None:
    """Rows written under the HASH layout (ingest01) are in their run's partition after metrics02."""
    u = make_url(db_url)
    name = f"{u.database}_relist"
    url = u.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = create_engine(url)
    try:
        migrate.upgrade(url, "ingest01")
        with eng.begin() as conn:
            runs = [_run(conn, f"old-{i}") for i in range(2)]
            for i, run in enumerate(runs):
                conn.execute(
                    text(
                        "INSERT INTO row_metrics (model_run_id, data_row_id, has_gt, has_pred, split, num_gt,"
                        " num_pred, tp, fp, fn, f1) SELECT :r, g, true, true, 'train', 1, 1, 1, 0, 0, :f"
                        " FROM generate_series(1, :n) g"
                    ),
                    {"r": run, "n": 10 + i, "f": 0.5 + i},
                )
        migrate.upgrade(url)
        with eng.connect() as conn:
            for i, run in enumerate(runs):
                got = conn.execute(text(f"SELECT count(*), min(f1), max(f1) FROM row_metrics_r{run}")).one()
                assert tuple(got) == (10 + i, 0.5 + i, 0.5 + i)
            assert conn.execute(text("SELECT count(*) FROM row_metrics")).scalar() == 21
            assert conn.execute(text("SELECT to_regclass('row_metrics_old')")).scalar() is None
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
