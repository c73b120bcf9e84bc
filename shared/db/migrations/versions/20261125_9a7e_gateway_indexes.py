"""gateway indexes: keyset pages of the gallery sorted by any indexed metric

Revision ID: gateway01
Revises: 0001
Create Date: 2026-11-25 19:00:00

One b-tree per sortable metric, ``(model_run_id, <metric>, data_row_id)`` on ``row_metrics`` and
``(model_run_id, class_id, <metric>, data_row_id)`` on ``row_class_metrics``: a gallery page sorted by a
metric (optionally restricted to a class) is then an index range scan that starts at the cursor, so the
first page and the 5,000th cost the same. ``CREATE INDEX`` on the partitioned parent creates the index on
every partition. Error-type lookups get a partial index on ``object_matches``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "gateway01"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep in sync with services/gateway/domain.py INDEXED_METRICS.
METRICS = ("mean_iou", "mean_conf", "min_conf", "precision", "recall", "f1", "tp", "fp", "fn")


def upgrade() -> None:
    for m in METRICS:
        op.create_index(f"ix_row_metrics_run_{m}", "row_metrics", ["model_run_id", m, "data_row_id"])
        op.create_index(
            f"ix_row_class_metrics_run_class_{m}",
            "row_class_metrics",
            ["model_run_id", "class_id", m, "data_row_id"],
        )
    op.create_index(
        "ix_object_matches_run_error",
        "object_matches",
        ["model_run_id", "error_type", "data_row_id"],
        postgresql_where="error_type IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_object_matches_run_error", table_name="object_matches")
    for m in METRICS:
        op.drop_index(f"ix_row_class_metrics_run_class_{m}", table_name="row_class_metrics")
        op.drop_index(f"ix_row_metrics_run_{m}", table_name="row_metrics")
