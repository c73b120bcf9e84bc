"""Dependencies: the request's session (the edge owns the transaction), the caller, scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import domain
from services.gateway.domain import Principal
from services.gateway.repository import auth as repo
from services.gateway.state import GatewayState
from shared.errors import Forbidden, Unauthorized
from shared.logging import get_logger

log = get_logger(__name__)


def get_state(request: Request) -> GatewayState:
    return request.app.state.gw  # type: ignore[no-any-return]


StateDep = Annotated[GatewayState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the route returns, roll back when it raises."""
    async with state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _raw_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


async def get_principal(
    state: StateDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    raw = _raw_key(authorization, x_api_key)
    if raw is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer bsk_...' or 'X-API-Key'")
    parsed = domain.parse_key(raw)
    if parsed is None:
        raise Unauthorized("the API key is malformed (expected bsk_<prefix>_<secret>)")
    prefix, secret = parsed
    key = await repo.key_by_prefix(session, prefix)
    pepper = state.settings.secret_key.get_secret_value()
    if key is None or not domain.verify_secret(secret, pepper, key.key_hash):
        log.info("api key refused", key_prefix=prefix, reason="unknown or wrong secret")
        raise Unauthorized("the API key is not valid")
    if key.revoked_at is not None:
        log.info("api key refused", key_prefix=prefix, reason="revoked")
        raise Unauthorized("the API key was revoked")
    interval = state.settings.gateway.key_touch_interval_s
    last = key.last_used_at
    if last is None or (datetime.now(UTC) - last).total_seconds() >= interval:
        await repo.touch_key(session, key.id, interval)
    return Principal(workspace_id=key.workspace_id, key_id=key.id, scopes=frozenset(key.scopes))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has(scope):
            raise Forbidden(
                f"this API key lacks the {scope!r} scope (it has {sorted(principal.scopes)})",
                context={"required_scope": scope},
            )
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]
    return check


def route_scope(dependant: Any) -> str | None:
    """The scope a route requires (found in its dependency tree), for the OpenAPI ``x-required-scope``."""
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None) or route_scope(dep)
        if scope:
            return scope  # type: ignore[no-any-return]
    return None


ReadDep = Annotated[Principal, Depends(require("read"))]
WriteDep = Annotated[Principal, Depends(require("write"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
