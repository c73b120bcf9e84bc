"""Workspaces and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ApiKey, Workspace


async def workspace_by_name(session: AsyncSession, name: str) -> Workspace | None:
    return (await session.execute(select(Workspace).where(Workspace.name == name))).scalar_one_or_none()


async def create_workspace(session: AsyncSession, name: str) -> Workspace:
    ws = Workspace(name=name)
    session.add(ws)
    await session.flush()
    return ws


async def add_key(
    session: AsyncSession, workspace_id: int, name: str, prefix: str, key_hash: str, scopes: list[str]
) -> ApiKey:
    key = ApiKey(workspace_id=workspace_id, name=name, prefix=prefix, key_hash=key_hash, scopes=scopes)
    session.add(key)
    await session.flush()
    await session.refresh(key)
    return key


async def key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()


async def list_keys(session: AsyncSession, workspace_id: int) -> list[ApiKey]:
    q = select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
    return list((await session.execute(q)).scalars())


async def get_key(session: AsyncSession, workspace_id: int, key_id: int) -> ApiKey | None:
    q = select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
    return (await session.execute(q)).scalar_one_or_none()


async def touch_key(session: AsyncSession, key_id: int, interval_s: int) -> None:
    """Record use, at most once per ``interval_s`` (a conditional UPDATE; no lock waits on hot keys)."""
    now = datetime.now(UTC)
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - timedelta(seconds=interval_s)),
        )
        .values(last_used_at=now)
    )
