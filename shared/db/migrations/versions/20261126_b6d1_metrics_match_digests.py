"""metrics: match digests, the aggregation's input packed per row task

Revision ID: metrics05
Revises: ingest03
Create Date: 2026-11-26 01:40:00

A run's per-class aggregation read every stored match back (binary COPY of ~1.7M objects for a
100k-row run: ~5 s of client CPU and ~3 s of server CPU, repeated by every re-aggregation). Each row
task now also stores, in the same transaction, the few fields the aggregation needs of its objects as
fixed-width records (``shared.db.models.match_digest``). The byte columns are stored without
compression (``STORAGE EXTERNAL``): the records are written once and read whole.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics05"
down_revision: str | None = "ingest03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "match_digests",
        sa.Column("model_run_id", sa.BigInteger(), nullable=False),
        sa.Column("first_row", sa.BigInteger(), nullable=False),
        sa.Column("last_row", sa.BigInteger(), nullable=False),
        sa.Column("row_ids", sa.LargeBinary(), nullable=False),
        sa.Column("preds", sa.LargeBinary(), nullable=False),
        sa.Column("gts", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_run_id"],
            ["model_runs.id"],
            name=op.f("fk_match_digests_model_run_id_model_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_run_id", "first_row", name=op.f("pk_match_digests")),
    )
    for column in ("row_ids", "preds", "gts"):
        op.execute(f"ALTER TABLE match_digests ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("match_digests")
