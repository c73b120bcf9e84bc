"""The inference worker: consumes queue "inference" (``inference.run``).

    celery -A services.inference.worker:app worker -Q inference --concurrency 1

One process holds one detector (ONNX Runtime session or Triton client), built on its first task.
"""

from __future__ import annotations

from celery import Celery

from shared.celery import make_celery
from shared.settings import Settings, get_settings


def create_worker_app(settings: Settings) -> Celery:
    return make_celery("inference", settings, include=["services.inference.tasks"])


app = create_worker_app(get_settings())
