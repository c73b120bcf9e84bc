"""metrics: one LIST partition per model run for the run's result tables

Revision ID: metrics02
Revises: ingest01
Create Date: 2026-11-25 22:30:00

``object_matches``, ``row_metrics`` and ``row_class_metrics`` go from 8 HASH partitions to one partition
per run, ``<table>_r<run id>`` (shared/db/partitions.py). A run's results then live in tables of their own,
which lets the metrics service load a large run's first computation the way Postgres recommends for bulk
loads — into a detached table with only the indexes writing needs, building the gallery's ~20 sort
indexes once at the end and attaching it — instead of maintaining every index row by row (measured on
100k rows: the index maintenance was ~70% of a row task).

A trigger on ``model_runs`` creates the new run's partitions (attached, with every index of the parent),
so any writer can insert through the parent tables. ``CREATE TABLE ... PARTITION OF`` would hold an ACCESS
EXCLUSIVE lock on the parents until the run's transaction commits; the trigger creates a plain table and
ATTACHes it (SHARE UPDATE EXCLUSIVE: readers and writers of other runs are not blocked); the CHECK
constraint lets ATTACH skip its validation scan.

The redundant ``ix_row_class_metrics_run_class`` (same columns as the primary key) is dropped.
Existing rows are moved into the new partitions. Downgrade goes back to 8 HASH partitions.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "metrics02"
down_revision: str | None = "ingest01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("object_matches", "row_metrics", "row_class_metrics")
HASH_PARTITIONS = 8

CREATE_FUNCTIONS = """
CREATE FUNCTION blindspot_create_run_partitions(run bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t text; p text;
BEGIN
  FOREACH t IN ARRAY ARRAY['object_matches', 'row_metrics', 'row_class_metrics'] LOOP
    p := t || '_r' || run;
    IF to_regclass(p) IS NULL THEN
      EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', p, t);
      EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (model_run_id = %s)', p, 'ck_' || p || '_run', run);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%s)', t, p, run);
    END IF;
  END LOOP;
END $$;

CREATE FUNCTION blindspot_model_runs_partitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM blindspot_create_run_partitions(NEW.id);
  RETURN NULL;
END $$;

CREATE TRIGGER model_runs_partitions AFTER INSERT ON model_runs
  FOR EACH ROW EXECUTE FUNCTION blindspot_model_runs_partitions();
"""

DROP_FUNCTIONS = """
DROP TRIGGER IF EXISTS model_runs_partitions ON model_runs;
DROP FUNCTION IF EXISTS blindspot_model_runs_partitions();
DROP FUNCTION IF EXISTS blindspot_create_run_partitions(bigint);
"""


def _repartition(table: str, partition_by: str) -> None:
    """Re-create ``table`` (same columns, constraints and indexes) partitioned by ``partition_by``.

    The old parent is renamed (with its constraint/index names, which share one namespace) and dropped
    after the rows are copied; the caller creates the new partitions before the copy.
    """
    conn = op.get_bind()
    named = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u', 'f') ORDER BY contype DESC"
        ),
        {"t": table},
    ).all()
    indexes = conn.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = CAST(:t AS regclass)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        ),
        {"t": table},
    ).all()
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    for name, definition in named:
        if not definition.startswith("FOREIGN KEY"):
            op.execute(f"ALTER TABLE {table}_old RENAME CONSTRAINT {name} TO {name}_old")
    for name, _ in indexes:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    op.execute(
        f"CREATE TABLE {table} (LIKE {table}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        f" PARTITION BY {partition_by}"
    )
    for name, definition in named:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for _, definition in indexes:
        op.execute(definition.replace(" ON ONLY ", " ON "))


def _move_rows(table: str) -> None:
    op.execute(f"INSERT INTO {table} SELECT * FROM {table}_old")
    op.execute(f"DROP TABLE {table}_old CASCADE")


def upgrade() -> None:
    op.drop_index("ix_row_class_metrics_run_class", table_name="row_class_metrics")
    for table in TABLES:
        _repartition(table, "LIST (model_run_id)")
    op.execute(CREATE_FUNCTIONS)
    op.execute("SELECT blindspot_create_run_partitions(id) FROM model_runs")
    for table in TABLES:
        _move_rows(table)


def downgrade() -> None:
    op.execute(DROP_FUNCTIONS)
    for table in TABLES:
        _repartition(table, "HASH (model_run_id)")
        for i in range(HASH_PARTITIONS):
            op.execute(
                f"CREATE TABLE {table}_p{i} PARTITION OF {table}"
                f" FOR VALUES WITH (MODULUS {HASH_PARTITIONS}, REMAINDER {i})"
            )
        _move_rows(table)
    op.create_index(
        "ix_row_class_metrics_run_class",
        "row_class_metrics",
        ["model_run_id", "class_id", "data_row_id"],
    )
