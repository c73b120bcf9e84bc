"""Declarative base with a naming convention, so Alembic names every constraint the same way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Tables partitioned by model run. ``predictions``: HASH (model_run_id) in RUN_PARTITIONS partitions
# (migration 0001). The run's result tables: one LIST partition per run (migration metrics02,
# shared/db/partitions.py).
RUN_PARTITIONED_TABLES = ("predictions", "object_matches", "row_metrics", "row_class_metrics")
RUN_PARTITIONS = 8


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {int: BigInteger}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
