"""The metrics Celery app: ``celery -A services.metrics.worker:app worker -Q metrics -c 1``."""

from __future__ import annotations

from shared.celery import make_celery
from shared.logging import configure_logging
from shared.settings import get_settings

_settings = get_settings()
configure_logging(_settings.log_level)
app = make_celery("metrics", _settings, include=["services.metrics.tasks"])
