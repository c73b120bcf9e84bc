"""A Celery app for the broker tests: the house config and decorator, one task, a dedicated Redis DB.

Run as a worker subprocess by test_celery_redis.py (``celery -A tests.integration.foundation.celery_app:app
worker -Q metrics``). The task counts its attempts in Redis; with ``model_run_id < 0`` its first attempt
announces itself and sleeps, so the test can SIGKILL the worker mid-task and watch the redelivery.
"""

from __future__ import annotations

import time

import redis

from shared.celery import house_task, make_celery
from shared.contracts.tasks import TaskName
from shared.settings import Settings

settings = Settings()
app = make_celery("blindspot-test", settings)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.redis.url)


@house_task(app, TaskName.metrics_aggregate_run)
def aggregate(model_run_id: int, **_: object) -> dict[str, int]:
    client = _redis()
    attempt = int(client.incr(f"attempts:{model_run_id}"))
    if model_run_id < 0 and attempt == 1:
        client.set(f"running:{model_run_id}", 1)
        time.sleep(settings.celery.task_time_limit_s - 1)
    client.rpush("done", model_run_id)
    return {"model_run_id": model_run_id, "attempt": attempt}
