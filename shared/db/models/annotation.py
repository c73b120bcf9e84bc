from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin


class Annotation(TimestampMixin, Base):
    """A ground-truth box, absolute pixels, COCO ``xywh`` (x, y = top-left corner)."""

    __tablename__ = "annotations"
    __table_args__ = (CheckConstraint("w >= 0 AND h >= 0", name="nonnegative_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    data_row_id: Mapped[int] = mapped_column(ForeignKey("data_rows.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"), index=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    # COCO area (segment area when known, else w*h); drives the small/medium/large ranges.
    area: Mapped[float] = mapped_column(Float)
    iscrowd: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    source: Mapped[str] = mapped_column(String(32), default="import", server_default="import")
