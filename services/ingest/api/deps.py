"""``Annotated`` dependency aliases: the caller, the session (commits on success), the context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from services.ingest.context import IngestContext
from shared.db.session import session_scope
from shared.internal_auth import Caller, internal_caller, internal_writer


def get_context(request: Request) -> IngestContext:
    ctx: IngestContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[IngestContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """The edge owns the transaction: commit when the route returns, roll back when it raises."""
    with session_scope(ctx.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CallerDep = Annotated[Caller, Depends(internal_caller)]


WriterDep = Annotated[Caller, Depends(internal_writer)]
