"""ingest: the predictions reference checks also on each partition, so a COPY can target one

Revision ID: ingest02
Revises: metrics03
Create Date: 2026-11-26 00:45:00

Postgres (copyfrom.c) gives up multi-row inserts for a COPY into a *partitioned* table that has a
statement trigger with a transition table (ingest01's reference check): every row then goes through
the single-row path. A COPY straight into the run's partition keeps the multi-row path, but statement
triggers of the parent do not fire for it. So each partition gets the same two triggers (a partition's
own statement triggers fire only when it is the statement's target, so nothing is checked twice); the
parent keeps its own for writes through it. Each partition's ``id`` also gets the parent's identity
sequence as its default where the partition has no identity of its own (before Postgres 17; from 17 on,
partitions inherit the identity and a write to a leaf draws from it already). Ingest COPYs into
``partitions.leaf_partition(...)``.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "ingest02"
down_revision: str | None = "metrics03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = {"insert": "INSERT", "update": "UPDATE"}


def _partitions() -> list[str]:
    return [
        str(r[0])
        for r in op.get_bind().execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = CAST('predictions' AS regclass) ORDER BY c.relname"
            )
        )
    ]


def _without_identity(part: str) -> bool:
    """The leaf's ``id`` is a plain column (Postgres < 17), not one inheriting the parent's identity."""
    kind = op.get_bind().execute(
        text("SELECT attidentity FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attname = 'id'"),
        {"t": part},
    ).scalar_one()
    return not kind


def upgrade() -> None:
    seq = op.get_bind().execute(text("SELECT pg_get_serial_sequence('predictions', 'id')")).scalar_one()
    for part in _partitions():
        if _without_identity(part):
            op.execute(f"ALTER TABLE {part} ALTER COLUMN id SET DEFAULT nextval('{seq}'::regclass)")
        for name, event in EVENTS.items():
            op.execute(
                f"CREATE TRIGGER predictions_refs_{name} AFTER {event} ON {part}"
                " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION predictions_check_refs()"
            )


def downgrade() -> None:
    for part in _partitions():
        if _without_identity(part):
            op.execute(f"ALTER TABLE {part} ALTER COLUMN id DROP DEFAULT")
        for name in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS predictions_refs_{name} ON {part}")
