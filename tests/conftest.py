"""Shared fixtures: a Postgres database per test worker built by the real migrations.

Real servers only (STYLE.md #10): Postgres runs on 127.0.0.1 on every machine here (CI included);
``BLINDSPOT_TEST_DATABASE_URL`` points elsewhere. Each test gets a session rolled back at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shared.db import migrate

# Each area's fixtures live in tests/fixtures/<area>.py and are listed here.
pytest_plugins: list[str] = [
    "tests.fixtures.search",
    "tests.fixtures.s3",
    "tests.fixtures.gateway",
    "tests.fixtures.metrics",
    "tests.fixtures.inference",
    "tests.fixtures.browser",
]

BASE_URL = os.environ.get(
    "BLINDSPOT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/blindspot_test"
)


def _worker_url() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    u = make_url(BASE_URL)
    return u.set(database=f"{u.database}_{worker}").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A fresh database for this test worker, migrated to head."""
    url = _worker_url()
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url, pool_pre_ping=True)
    yield eng
    eng.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test (savepoints for commits)."""
    conn = engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    trans.rollback()
    conn.close()
