"""What the lifespan builds once and every request reads (``request.app.state.gw``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.gateway.presign import Presigner
from shared.settings import Settings


@dataclass
class GatewayState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    presigner: Presigner
    upstream: dict[str, httpx.AsyncClient]
    celery: Any

    def presign(self, key: str | None) -> str | None:
        """A short-lived GET URL (computed locally, no S3 round trip; valid >= TTL/2), or None without a key."""
        if not key:
            return None
        return self.presigner.get(key)
