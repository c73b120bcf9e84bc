"""The search worker: consumes queue "embeddings" (embed rows/objects, match slices, projections).

    celery -A services.search.worker:app worker -Q embeddings -n embeddings@%h --concurrency 1

With a Qdrant server (BLINDSPOT_QDRANT__URL) run as many as you like. With the embedded store (the
default) only one process may open it, so the search API consumes this queue itself
(``BLINDSPOT_SEARCH__INPROCESS_WORKER``, on by default) and a separate worker started anyway (the local
Procfile has one) stops consuming at start-up, saying why, and idles instead of fighting for the store.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready

from shared.celery import make_celery
from shared.contracts.tasks import Queue
from shared.logging import get_logger
from shared.settings import Settings, get_settings

log = get_logger(__name__)
INPROCESS_HOSTNAME = "search-api@%h"


def create_worker_app(settings: Settings) -> Celery:
    return make_celery("search", settings, include=["services.search.tasks"])


app = create_worker_app(get_settings())


def yields_to_api(settings: Settings, hostname: str) -> bool:
    """Whether a worker named ``hostname`` must leave the queue to the search API's in-process worker."""
    embedded = settings.qdrant.url is None
    return embedded and settings.search.inprocess_worker and not hostname.startswith("search-api@")


@worker_ready.connect
def _leave_queue_to_api(sender: Any = None, **_: Any) -> None:
    if sender is None or getattr(sender, "app", None) is not app:
        return
    if yields_to_api(get_settings(), str(sender.hostname)):
        log.warning(
            "embedded vector store: the search API consumes queue 'embeddings' itself; this worker idles"
            " (set BLINDSPOT_QDRANT__URL to a Qdrant server to scale separate search workers)",
            hostname=sender.hostname,
        )
        sender.cancel_task_queue(Queue.embeddings.value)
