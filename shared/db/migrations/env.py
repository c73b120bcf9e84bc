from __future__ import annotations

import re

from alembic import context
from sqlalchemy import create_engine, pool

import shared.db.models  # noqa: F401  (registers the tables)
from shared.db.base import Base
from shared.settings import get_settings

PARTITION_NAME = re.compile(r".+_[pr]\d+$")
config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Partitions (``<table>_p<N>``, ``<table>_r<run id>``) are created by DDL in the migration, not mapped as models."""
    return not (type_ == "table" and reflected and PARTITION_NAME.match(name or ""))


def _url() -> str:
    return config.attributes.get("url") or get_settings().database.url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, include_object=_include_object
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(
            connection=connectable, target_metadata=target_metadata, include_object=_include_object
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, include_object=_include_object
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
