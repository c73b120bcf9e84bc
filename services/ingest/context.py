"""Everything the ingest use cases need, built once by the app lifespan or the worker (never at import)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.ingest.domain import ImageLimits
from shared.adapters.storage import ObjectStore
from shared.settings import Settings


@dataclass
class IngestContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    celery: Celery
    pool: ThreadPoolExecutor

    @property
    def image_limits(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(
            max_bytes=s.limits.max_image_bytes,
            max_pixels=s.limits.max_image_pixels,
            thumbnail_px=s.ingest.thumbnail_px,
            thumbnail_quality=s.ingest.thumbnail_quality,
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()
