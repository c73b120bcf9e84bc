"""Workspaces and API keys: created with a key shown once, listed, revoked."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import domain
from services.gateway.domain import Principal
from services.gateway.repository import auth as repo
from shared.db.models import ApiKey
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized
from shared.settings import Settings


def key_out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


async def _new_key(
    session: AsyncSession, settings: Settings, workspace_id: int, name: str, scopes: list[str]
) -> dict[str, Any]:
    new = domain.generate_key()
    key_hash = domain.hash_secret(new.secret, settings.secret_key.get_secret_value())
    key = await repo.add_key(session, workspace_id, name, new.prefix, key_hash, sorted(set(scopes)))
    return {**key_out(key), "key": new.plaintext}


async def create_workspace(
    session: AsyncSession, settings: Settings, token: str | None, name: str, key_name: str
) -> dict[str, Any]:
    expected = settings.gateway.bootstrap_token.get_secret_value()
    if not token or not hmac.compare_digest(token, expected):
        raise Unauthorized("creating a workspace needs the bootstrap token (X-Bootstrap-Token header)")
    if await repo.workspace_by_name(session, name) is not None:
        raise Conflict(f"workspace {name!r} exists already", context={"field": "name"})
    ws = await repo.create_workspace(session, name)
    key = await _new_key(session, settings, ws.id, key_name, ["admin"])
    return {"workspace_id": ws.id, "name": ws.name, "api_key": key}


async def create_key(
    session: AsyncSession, settings: Settings, principal: Principal, name: str, scopes: list[str]
) -> dict[str, Any]:
    if domain.effective_rank(scopes) > domain.effective_rank(principal.scopes):
        raise Forbidden("a key cannot create a key with more scope than its own")
    return await _new_key(session, settings, principal.workspace_id, name, scopes)


async def list_keys(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    return [key_out(k) for k in await repo.list_keys(session, principal.workspace_id)]


async def revoke_key(session: AsyncSession, principal: Principal, key_id: int) -> dict[str, Any]:
    key = await repo.get_key(session, principal.workspace_id, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found in this workspace", context={"key_id": key_id})
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key_out(key)
