from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base


class MatchDigest(Base):
    """What a run's aggregation reads of ``object_matches``, packed per row task (migration metrics05).

    One row per row set a metrics task wrote: the row ids it covers and, as fixed-width little-endian
    records, the fields the per-class aggregation needs of each prediction and GT box. Written in the same
    transaction as the row set's ``object_matches``; when a later task rewrites some of these rows, the
    digest is cut down to the rows it still describes. The aggregation uses the digests only when they
    cover exactly the run's rows (``row_metrics``), once each; otherwise it reads ``object_matches``
    (services/metrics/repository.py).
    """

    __tablename__ = "match_digests"

    model_run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    first_row: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_row: Mapped[int] = mapped_column(BigInteger)
    row_ids: Mapped[bytes] = mapped_column(LargeBinary)  # int64 little-endian, ascending
    preds: Mapped[bytes] = mapped_column(LargeBinary)  # repository.DIGEST_PRED records
    gts: Mapped[bytes] = mapped_column(LargeBinary)  # repository.DIGEST_GT records
