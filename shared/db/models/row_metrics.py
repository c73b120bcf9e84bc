from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base


class _RowMetricColumns:
    """Per-row numbers at the run's thresholds (definitions: docs/metrics.md, "Per row")."""

    split: Mapped[str] = mapped_column(String(16))
    num_gt: Mapped[int] = mapped_column(Integer)
    num_pred: Mapped[int] = mapped_column(Integer)  # predictions at/above the confidence threshold
    tp: Mapped[int] = mapped_column(Integer)
    fp: Mapped[int] = mapped_column(Integer)
    fn: Mapped[int] = mapped_column(Integer)
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    f1: Mapped[float | None] = mapped_column(Float)
    mean_iou: Mapped[float | None] = mapped_column(Float)  # mean IoU over TP matches
    min_conf: Mapped[float | None] = mapped_column(Float)
    mean_conf: Mapped[float | None] = mapped_column(Float)
    max_conf: Mapped[float | None] = mapped_column(Float)
    # Labelbox-compatible family (greedy by IoU, strict >; labelbox-python metrics semantics).
    lb_iou: Mapped[float | None] = mapped_column(Float)
    lb_tp: Mapped[int | None] = mapped_column(Integer)
    lb_fp: Mapped[int | None] = mapped_column(Integer)
    lb_fn: Mapped[int | None] = mapped_column(Integer)
    # TIDE error counts among this row's FPs/FNs.
    n_cls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_loc: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_both: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_dupe: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_bkg: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_miss: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RowMetrics(_RowMetricColumns, Base):
    """Per-row metrics over all classes. Partitioned by run; the gallery's main table."""

    __tablename__ = "row_metrics"
    __table_args__ = (
        Index("ix_row_metrics_run_split", "split", "data_row_id"),  # per-run partitions (metrics03)
        {"postgresql_partition_by": "LIST (model_run_id)"},
    )

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    data_row_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    has_gt: Mapped[bool] = mapped_column(Boolean)
    has_pred: Mapped[bool] = mapped_column(Boolean)


class RowClassMetrics(_RowMetricColumns, Base):
    """Per-row metrics restricted to one class (a class present in the row's GT or predictions)."""

    __tablename__ = "row_class_metrics"
    __table_args__ = (
        Index("ix_row_class_metrics_run_row", "data_row_id"),  # metrics01, metrics03
        {"postgresql_partition_by": "LIST (model_run_id)"},
    )

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    class_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data_row_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
