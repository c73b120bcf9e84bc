from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Float, Identity, PrimaryKeyConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base


class Prediction(Base):
    """A predicted box (absolute pixels, ``xywh``) with confidence in [0, 1]. Partitioned by run.

    References to model_runs/data_rows/classes are enforced by statement-level triggers (migration
    ingest01: same cascade/restrict rules, checked once per bulk insert instead of once per row).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint("w >= 0 AND h >= 0", name="nonnegative_size"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="conf_range"),
        # One index serves every read (a run's boxes by data row) and keeps ids unique (migration ingest03).
        PrimaryKeyConstraint("model_run_id", "data_row_id", "id", name="pk_predictions"),
        {"postgresql_partition_by": "HASH (model_run_id)"},
    )

    model_run_id: Mapped[int] = mapped_column(BigInteger)
    id: Mapped[int] = mapped_column(BigInteger, Identity())
    data_row_id: Mapped[int] = mapped_column(BigInteger)  # -> data_rows.id, ON DELETE CASCADE (trigger)
    class_id: Mapped[int] = mapped_column(BigInteger)  # -> classes.id, ON DELETE RESTRICT (trigger)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
