from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base


class ClassMetrics(Base):
    """Per-class metrics of a run for one split ('all' for every split together).

    ``class_id`` 0 holds the run-level summary (mAP etc. over all classes). COCO numbers are ``None``
    when undefined (a class without GT), never -1.
    """

    __tablename__ = "class_metrics"

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(16), primary_key=True)
    class_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    num_gt: Mapped[int] = mapped_column(Integer)
    num_pred: Mapped[int] = mapped_column(Integer)
    tp: Mapped[int] = mapped_column(Integer)
    fp: Mapped[int] = mapped_column(Integer)
    fn: Mapped[int] = mapped_column(Integer)
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    f1: Mapped[float | None] = mapped_column(Float)
    ap: Mapped[float | None] = mapped_column(Float)
    ap50: Mapped[float | None] = mapped_column(Float)
    ap75: Mapped[float | None] = mapped_column(Float)
    ap_small: Mapped[float | None] = mapped_column(Float)
    ap_medium: Mapped[float | None] = mapped_column(Float)
    ap_large: Mapped[float | None] = mapped_column(Float)
    ar1: Mapped[float | None] = mapped_column(Float)
    ar10: Mapped[float | None] = mapped_column(Float)
    ar100: Mapped[float | None] = mapped_column(Float)
    best_conf_threshold: Mapped[float | None] = mapped_column(Float)
    best_f1: Mapped[float | None] = mapped_column(Float)
    # {"recall": [...], "precision": [...]} at IoU 0.5 (101 COCO recall points) and more.
    pr_curve: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # {"confidence": [...], "f1": [...], "precision": [...], "recall": [...]}
    f1_curve: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # TIDE dAP per error type: {"cls": .., "loc": .., "both": .., "dupe": .., "bkg": .., "miss": ..}
    tide: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ConfusionCell(Base):
    """Confusion matrix of a run/split at its thresholds. ``None`` side = class_id 0."""

    __tablename__ = "confusion_cells"

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(16), primary_key=True)
    gt_class_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pred_class_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
