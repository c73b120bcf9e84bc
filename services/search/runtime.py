"""The clients a search process builds once (API lifespan or worker start) and the tasks use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from services.search.embedder import Embedder, get_embedder
from services.search.indexing import Blobs
from shared.adapters.vectors import VectorStore
from shared.contracts.tasks import TaskName
from shared.settings import Settings

Sender = Callable[[TaskName, BaseModel], Any]


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    store: VectorStore
    blobs: Blobs
    send: Sender
    _embedder: Embedder | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (the API process never needs it otherwise)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = get_embedder(self.settings)
            return self._embedder
