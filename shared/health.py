"""Readiness checks of the real dependencies, for ``/readyz`` (see shared/http.py)."""

from __future__ import annotations

import anyio
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.http import ReadinessCheck


def postgres_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def redis_check(url: str) -> ReadinessCheck:
    async def check() -> None:
        client = aioredis.from_url(url, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    return check


def sync_check(fn: object) -> ReadinessCheck:
    """Wrap a blocking check (S3 bucket_exists, Qdrant, Triton) so it runs off the event loop."""

    async def check() -> None:
        await anyio.to_thread.run_sync(fn)  # type: ignore[arg-type]

    return check
