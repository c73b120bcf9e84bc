"""Fixtures of the metrics integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture(scope="module")
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database (one engine per test module)."""
    eng = create_engine(db_url)
    yield sessionmaker(eng, expire_on_commit=False)
    eng.dispose()
