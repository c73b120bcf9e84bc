from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin


class DataRow(TimestampMixin, Base):
    """One image. ``global_key`` is unique per workspace and makes every upload an upsert."""

    __tablename__ = "data_rows"
    __table_args__ = (
        UniqueConstraint("workspace_id", "global_key"),
        CheckConstraint("width > 0 AND height > 0", name="positive_size"),
        Index("ix_data_rows_dataset_id_id", "dataset_id", "id"),
        Index("ix_data_rows_metadata", "metadata", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    global_key: Mapped[str] = mapped_column(String(1024))
    object_key: Mapped[str] = mapped_column(String(1024))
    thumbnail_key: Mapped[str | None] = mapped_column(String(1024))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(64), default="image/jpeg", server_default="image/jpeg")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    # Number of ground-truth boxes; 0 means "annotation is none" (unlabeled). Kept by ingest.
    num_annotations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    embedded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
