from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin
from shared.db.models.enums import Split, check_in


class ModelRun(TimestampMixin, Base):
    """A model's predictions over a set of rows, with the thresholds its default metrics use."""

    __tablename__ = "model_runs"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", "version"),
        CheckConstraint("iou_threshold > 0 AND iou_threshold <= 1", name="iou_range"),
        CheckConstraint("confidence_threshold >= 0 AND confidence_threshold <= 1", name="conf_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100), default="1", server_default="1")
    iou_threshold: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    confidence_threshold: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Set when per-class metrics were last aggregated (NULL = never or stale).
    aggregated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelRunRow(Base):
    """Membership of a data row in a run, with its split."""

    __tablename__ = "model_run_rows"
    __table_args__ = (CheckConstraint(check_in("split", Split), name="split_values"),)

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    data_row_id: Mapped[int] = mapped_column(
        ForeignKey("data_rows.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    split: Mapped[str] = mapped_column(
        String(16), default=Split.unassigned.value, server_default="unassigned"
    )
