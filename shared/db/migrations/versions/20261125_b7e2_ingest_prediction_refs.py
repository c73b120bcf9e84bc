"""ingest: set-based reference checks on predictions instead of per-row foreign keys

Revision ID: ingest01
Revises: metrics01
Create Date: 2026-11-25 19:20:00

``predictions`` is the bulk table (millions of boxes per run). Its three foreign keys fire one RI trigger
per inserted row each, which made a binary COPY of 200k boxes 5x slower than the insert itself. They
are replaced by the same guarantees checked once per statement with transition tables:

- AFTER INSERT (statement): every new ``model_run_id``/``data_row_id``/``class_id`` must exist, else
  ``foreign_key_violation`` (one anti-join over the inserted rows).
- AFTER DELETE on ``data_rows`` / ``model_runs`` (statement): delete their predictions (ON DELETE CASCADE).
- AFTER DELETE on ``classes`` (statement): refuse while predictions use the class (ON DELETE RESTRICT).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ingest01"
down_revision: str | None = "metrics01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FKS = {
    "fk_predictions_model_run_id_model_runs": ("model_run_id", "model_runs", "CASCADE"),
    "fk_predictions_data_row_id_data_rows": ("data_row_id", "data_rows", "CASCADE"),
    "fk_predictions_class_id_classes": ("class_id", "classes", "RESTRICT"),
}


def upgrade() -> None:
    for name in FKS:
        op.drop_constraint(name, "predictions", type_="foreignkey")
    op.execute(
        """
        CREATE FUNCTION predictions_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE missing bigint;
        BEGIN
          -- Distinct ids first: a few thousand index probes instead of one per inserted row.
          SELECT v.id INTO missing FROM (SELECT DISTINCT model_run_id AS id FROM new_rows) v
            WHERE NOT EXISTS (SELECT 1 FROM model_runs r WHERE r.id = v.id) LIMIT 1;
          IF FOUND THEN
            RAISE foreign_key_violation USING MESSAGE = format('predictions: model run %s does not exist', missing);
          END IF;
          SELECT v.id INTO missing FROM (SELECT DISTINCT data_row_id AS id FROM new_rows) v
            WHERE NOT EXISTS (SELECT 1 FROM data_rows d WHERE d.id = v.id) LIMIT 1;
          IF FOUND THEN
            RAISE foreign_key_violation USING MESSAGE = format('predictions: data row %s does not exist', missing);
          END IF;
          SELECT v.id INTO missing FROM (SELECT DISTINCT class_id AS id FROM new_rows) v
            WHERE NOT EXISTS (SELECT 1 FROM classes c WHERE c.id = v.id) LIMIT 1;
          IF FOUND THEN
            RAISE foreign_key_violation USING MESSAGE = format('predictions: class %s does not exist', missing);
          END IF;
          RETURN NULL;
        END $$;
        CREATE TRIGGER predictions_refs_insert AFTER INSERT ON predictions
          REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_check_refs();
        CREATE TRIGGER predictions_refs_update AFTER UPDATE ON predictions
          REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_check_refs();

        CREATE FUNCTION predictions_cascade_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          DELETE FROM predictions p USING old_rows o WHERE p.data_row_id = o.id;
          RETURN NULL;
        END $$;
        CREATE TRIGGER data_rows_cascade_predictions AFTER DELETE ON data_rows
          REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_cascade_rows();

        CREATE FUNCTION predictions_cascade_runs() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          DELETE FROM predictions p USING old_rows o WHERE p.model_run_id = o.id;
          RETURN NULL;
        END $$;
        CREATE TRIGGER model_runs_cascade_predictions AFTER DELETE ON model_runs
          REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_cascade_runs();

        CREATE FUNCTION predictions_restrict_classes() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE used bigint;
        BEGIN
          SELECT p.class_id INTO used FROM predictions p JOIN old_rows o ON o.id = p.class_id LIMIT 1;
          IF FOUND THEN
            RAISE foreign_key_violation USING MESSAGE = format('class %s is still used by predictions', used);
          END IF;
          RETURN NULL;
        END $$;
        CREATE TRIGGER classes_restrict_predictions AFTER DELETE ON classes
          REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_restrict_classes();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS classes_restrict_predictions ON classes;
        DROP TRIGGER IF EXISTS model_runs_cascade_predictions ON model_runs;
        DROP TRIGGER IF EXISTS data_rows_cascade_predictions ON data_rows;
        DROP TRIGGER IF EXISTS predictions_refs_update ON predictions;
        DROP TRIGGER IF EXISTS predictions_refs_insert ON predictions;
        DROP FUNCTION IF EXISTS predictions_restrict_classes();
        DROP FUNCTION IF EXISTS predictions_cascade_runs();
        DROP FUNCTION IF EXISTS predictions_cascade_rows();
        DROP FUNCTION IF EXISTS predictions_check_refs();
        """
    )
    for name, (column, table, ondelete) in FKS.items():
        op.create_foreign_key(name, "predictions", table, [column], ["id"], ondelete=ondelete)
