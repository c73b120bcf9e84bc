from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, SmallInteger, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base
from shared.db.models.enums import ErrorType, MatchStatus, ObjectKind, check_in


class ObjectMatch(Base):
    """Per-object outcome of matching in one run: one row per GT box and per prediction.

    ``status``/``matched_object_id``/``iou``/``error_type`` are at the run's thresholds.
    ``tp_mask`` is the threshold-free part ("match breakpoints"): bit ``k`` is set when the object is
    matched at IoU threshold ``0.50 + 0.05 k`` (k = 0..9) in COCO matching of all predictions; COCO
    matching goes in descending confidence, so for a confidence cut ``c`` the matches of the predictions
    with ``confidence >= c`` are unchanged. TP/FP/FN at any (IoU on the grid, confidence) pair are then
    a query over this table (docs/metrics.md, "Thresholds without recompute").
    """

    __tablename__ = "object_matches"
    __table_args__ = (
        CheckConstraint(check_in("kind", ObjectKind), name="kind_values"),
        CheckConstraint(check_in("status", MatchStatus), name="status_values"),
        CheckConstraint(f"error_type IS NULL OR {check_in('error_type', ErrorType)}", name="error_values"),
        Index("ix_object_matches_run_row", "data_row_id"),  # per-run partitions (metrics03)
        {"postgresql_partition_by": "LIST (model_run_id)"},
    )

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    object_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data_row_id: Mapped[int] = mapped_column(BigInteger)
    class_id: Mapped[int] = mapped_column(BigInteger)
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(2))
    matched_object_id: Mapped[int | None] = mapped_column(BigInteger)
    # IoU with the matched object (TP), else the best IoU with any object of the other kind.
    iou: Mapped[float | None] = mapped_column(Float)
    error_type: Mapped[str | None] = mapped_column(String(8))
    tp_mask: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    area: Mapped[float | None] = mapped_column(Float)
    iscrowd: Mapped[bool | None] = mapped_column()
    ignored: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Added by migration metrics01 (docs/metrics.md, "Thresholds without recompute").
    ign_mask: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    area_masks: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    match_iou: Mapped[float | None] = mapped_column(Float)
    match_ious: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    tide_error: Mapped[str | None] = mapped_column(String(8))
    tide_fix_class: Mapped[int | None] = mapped_column(BigInteger)
