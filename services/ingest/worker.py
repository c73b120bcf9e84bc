"""The ingest Celery worker (queue ``ingest``): ``celery -A services.ingest.worker:app worker -Q ingest``.

The Celery app object is cheap and connects lazily; the engine, S3 client and pool are built on the
first task in each worker process (never at import time) and reused.
"""

from __future__ import annotations

from celery import Celery

from services.ingest.context import IngestContext
from shared.celery import make_celery
from shared.settings import get_settings

app: Celery = make_celery("ingest", get_settings(), include=["services.ingest.tasks"])

_context: dict[str, IngestContext] = {}


def context() -> IngestContext:
    """This process's IngestContext (built on first use)."""
    if "ctx" not in _context:
        from services.ingest.main import build_context

        _context["ctx"] = build_context(get_settings())
    return _context["ctx"]


def use_context(ctx: IngestContext) -> None:
    """Run tasks of this process against ``ctx`` (tests, embedded workers)."""
    _context["ctx"] = ctx
