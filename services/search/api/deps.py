"""Dependency aliases of the search API: the session (the edge owns the transaction), the runtime,
the caller (internal token + workspace header, applied to every query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from services.search.runtime import Runtime
from shared.db.session import session_scope
from shared.internal_auth import Caller, internal_caller, internal_writer


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.search
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """Commit on success, roll back on error; services only flush."""
    with session_scope(rt.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CallerDep = Annotated[Caller, Depends(internal_caller)]


WriterDep = Annotated[Caller, Depends(internal_writer)]
