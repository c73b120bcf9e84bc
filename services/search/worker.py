"""The search worker: consumes queue "embeddings" (embed rows/objects, match slices, projections).

    celery -A services.search.worker worker -Q embeddings --pool=solo --concurrency=1

With a Qdrant server (BLINDSPOT_QDRANT__URL) run as many as you like. With the embedded store (the
default) only one process may open it: the search API then consumes this queue itself
(``BLINDSPOT_SEARCH__INPROCESS_WORKER``, on by default) and this separate worker is not started; if it
is, it fails fast naming the process that holds the store.
"""

from __future__ import annotations

from celery import Celery

from shared.celery import make_celery
from shared.settings import Settings, get_settings


def create_worker_app(settings: Settings) -> Celery:
    return make_celery("search", settings, include=["services.search.tasks"])


app = create_worker_app(get_settings())
