from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin


class Slice(TimestampMixin, Base):
    """A saved query: gallery filters and/or a similarity anchor (vectors + threshold)."""

    __tablename__ = "slices"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"))
    filter: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    similarity: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class SliceMember(Base):
    """Rows that joined a slice as they were ingested (the slice also re-evaluates when read)."""

    __tablename__ = "slice_members"

    slice_id: Mapped[int] = mapped_column(ForeignKey("slices.id", ondelete="CASCADE"), primary_key=True)
    data_row_id: Mapped[int] = mapped_column(
        ForeignKey("data_rows.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
