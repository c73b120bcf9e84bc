"""metrics: per-object columns that make per-class AP, TIDE and threshold changes work from stored matches

Revision ID: metrics01
Revises: gateway01
Create Date: 2026-11-25 19:05:00

``object_matches`` gains (definitions: docs/metrics.md, "Thresholds without recompute"):
- ``ign_mask``: bit k = a prediction matched to an ignored (crowd) GT at IoU 0.50 + 0.05 k (area "all").
- ``area_masks``: the same two masks for the COCO area ranges small/medium/large, packed: bits 0-9 tp
  small, 10-19 ignored small, 20-29 tp medium, 30-39 ignored medium, 40-49 tp large, 50-59 ignored
  large (pycocotools matches each area range separately, so AP_small needs its own matching).
- ``match_iou``: IoU with the matched GT (the same GT at every grid threshold where the prediction is
  a TP); ``match_ious``: the 10 per-threshold IoUs, only when the matched GT changes across thresholds.
- ``tide_error`` / ``tide_fix_class``: the TIDE error (t_f 0.5, t_b 0.1, every prediction) and, for
  cls/loc errors that TIDE would fix, the class the prediction becomes a TP of.

``row_class_metrics`` gains an index on (model_run_id, data_row_id): a metrics task replaces the
results of its row set, and without it that delete scans the run's whole partition.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "metrics01"
down_revision: str | None = "gateway01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "object_matches", sa.Column("ign_mask", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "object_matches", sa.Column("area_masks", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("object_matches", sa.Column("match_iou", sa.Float(), nullable=True))
    op.add_column("object_matches", sa.Column("match_ious", postgresql.ARRAY(sa.Float()), nullable=True))
    op.add_column("object_matches", sa.Column("tide_error", sa.String(length=8), nullable=True))
    op.add_column("object_matches", sa.Column("tide_fix_class", sa.BigInteger(), nullable=True))
    op.create_index("ix_row_class_metrics_run_row", "row_class_metrics", ["model_run_id", "data_row_id"])


def downgrade() -> None:
    op.drop_index("ix_row_class_metrics_run_row", table_name="row_class_metrics")
    for col in ("tide_fix_class", "tide_error", "match_ious", "match_iou", "area_masks", "ign_mask"):
        op.drop_column("object_matches", col)
