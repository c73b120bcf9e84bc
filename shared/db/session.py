"""Engine and session factories. Built by each app's lifespan or task wrapper, never at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import DatabaseSettings


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under a session (same transaction): for COPY and other driver-level calls."""
    return session.connection().connection.driver_connection  # type: ignore[return-value]


def make_engine(db: DatabaseSettings) -> Engine:
    return create_engine(
        db.url,
        pool_size=db.pool_size,
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={db.statement_timeout_ms}", "connect_timeout": 5},
    )


def make_async_engine(db: DatabaseSettings) -> AsyncEngine:
    url = db.url.replace("postgresql+psycopg://", "postgresql+psycopg_async://")
    return create_async_engine(
        url,
        pool_size=db.pool_size,
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={db.statement_timeout_ms}", "connect_timeout": 5},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The unit of work for a Celery task: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
