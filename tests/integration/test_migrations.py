from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from shared.db import migrate
from shared.db.base import RUN_PARTITIONED_TABLES, RUN_PARTITIONS, Base

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
        for t in RUN_PARTITIONED_TABLES:
            assert {f"{t}_p{i}" for i in range(RUN_PARTITIONS)} <= tables
        migrate.downgrade(url)
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert set(Base.metadata.tables) <= set(inspect(eng).get_table_names())
        eng.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


def test_partition_pruning_by_run(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        plan = "\n".join(
            r[0] for r in conn.execute(text("EXPLAIN SELECT * FROM row_metrics WHERE model_run_id = 42"))
        )
    import re

    assert len(set(re.findall(r"on (row_metrics_p\d+) ", plan))) == 1, plan
