"""Enqueue after commit, drop on rollback (a task must never see data that is not committed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "blindspot_after_commit"


def on_commit(session: Session, fn: Callable[[], Any]) -> None:
    """Run ``fn`` once the session's current transaction commits; forget it if it rolls back."""
    pending: list[Callable[[], Any]] = session.info.setdefault(_KEY, [])
    pending.append(fn)


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    pending = session.info.pop(_KEY, [])
    for fn in pending:
        fn()


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_KEY, None)
