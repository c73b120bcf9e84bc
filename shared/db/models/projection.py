from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TimestampMixin


class Projection(TimestampMixin, Base):
    """A 2-D map of a dataset's (or run's) image embeddings, computed by a job (UMAP or PCA)."""

    __tablename__ = "projections"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")


class ProjectionPoint(Base):
    __tablename__ = "projection_points"

    projection_id: Mapped[int] = mapped_column(
        ForeignKey("projections.id", ondelete="CASCADE"), primary_key=True
    )
    data_row_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
