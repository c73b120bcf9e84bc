"""Enqueue after commit, drop on rollback (a task must never see data that is not committed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "blindspot_after_commit"
_CHECKS = "blindspot_before_commit_checks"


def on_commit(session: Session, fn: Callable[[], Any], *, check: Callable[[], None] | None = None) -> None:
    """Run ``fn`` once the session's current transaction commits; forget it if it rolls back.

    ``check`` (optional) runs just before the commit: if it raises (e.g. the task broker is down), the
    commit is aborted and the caller rolls back, so no row is committed whose follow-up task cannot be
    sent. Each distinct check runs once per commit.
    """
    pending: list[Callable[[], Any]] = session.info.setdefault(_KEY, [])
    pending.append(fn)
    if check is not None:
        checks: list[Callable[[], None]] = session.info.setdefault(_CHECKS, [])
        if check not in checks:
            checks.append(check)


@event.listens_for(Session, "before_commit")
def _run_checks(session: Session) -> None:
    for check in session.info.get(_CHECKS, []):
        check()


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    session.info.pop(_CHECKS, None)
    pending = session.info.pop(_KEY, [])
    for fn in pending:
        fn()


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_KEY, None)
    session.info.pop(_CHECKS, None)
