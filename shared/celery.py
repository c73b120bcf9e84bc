"""The Celery app factory and the one house task decorator.

Reliability settings (see README "Reliability"): ``acks_late`` + ``reject_on_worker_lost`` so a task
whose worker dies is redelivered; prefetch 1; the Redis transport's ``visibility_timeout`` above the task
time limit, and kombu's ``unacked_restore_interval`` short, so redelivery takes seconds, not an hour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import kombu.exceptions as kombu_exc
import psycopg
import redis.exceptions as redis_exc
import sqlalchemy.exc as sa_exc
import urllib3
from celery import Celery, Task
from kombu import Queue as KombuQueue
from kombu.transport import redis as kombu_redis
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shared.contracts.tasks import QUEUE_OF, Queue, TaskName
from shared.db.enqueue import on_commit
from shared.errors import DependencyUnavailable
from shared.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Exceptions that mean "try again later": dependencies down (Postgres, Redis, the broker), lock contention.
RETRYABLE: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    ConnectionError,
    TimeoutError,
    sa_exc.OperationalError,  # Postgres refused/closed the connection, statement/lock timeout
    sa_exc.InterfaceError,  # the connection was closed under us
    psycopg.OperationalError,  # the same from raw psycopg (COPY paths): deadlock, lock timeout, lost link
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    kombu_exc.OperationalError,  # the broker refused a publish
    urllib3.exceptions.HTTPError,  # the S3 server (minio client) does not answer
)


class _RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        # kombu bug: when the broker connection is lost while messages are unacked (acks_late, ETA tasks),
        # closing the channel restores them through a transport whose client is already None and the
        # worker dies with AttributeError ('NoneType' has no attribute 'hostname'). Raise a connection
        # error instead: kombu ignores it, the worker reconnects, and the unacked messages come back after
        # the visibility timeout.
        if self.connection.client is None:
            raise redis_exc.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with the reconnect fix above (``broker_transport`` for redis:// URLs)."""

    Channel = _RedisChannel


def make_celery(name: str, settings: Settings, *, include: list[str] | None = None) -> Celery:
    app = Celery(name, broker=settings.broker_url, backend=settings.result_backend, include=include or [])
    if settings.broker_url.startswith("redis://"):  # rediss:// keeps kombu's own (its TLS set-up)
        app.conf.broker_transport = f"{__name__}:RedisTransport"
    c = settings.celery
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=c.task_time_limit_s,
        task_soft_time_limit=max(1, c.task_time_limit_s - 10),
        task_always_eager=c.task_always_eager,
        task_eager_propagates=True,
        task_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        task_queues=[KombuQueue(q.value) for q in Queue],
        task_default_queue=Queue.metrics.value,
        task_routes={name.value: {"queue": queue.value} for name, queue in QUEUE_OF.items()},
        broker_transport_options={
            "visibility_timeout": c.visibility_timeout_s,
            "unacked_restore_interval": c.unacked_restore_interval_s,
            # kombu scans for expired unacked messages only every Nth sweep (default 10): scan on every
            # sweep so the interval alone sets how fast a dead worker's tasks come back; and a sweep's
            # mutex left by a worker killed mid-sweep expires in a minute, not kombu's five.
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": 60,
            **({"global_keyprefix": c.key_prefix} if c.key_prefix else {}),
        },
        result_backend_transport_options={"visibility_timeout": c.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    return app


def house_task(
    app: Celery,
    name: TaskName,
    *,
    retry_on: tuple[type[BaseException], ...] = RETRYABLE,
    max_retries: int = 8,
) -> Callable[[F], F]:
    """Register ``fn`` as the task ``name`` with the house reliability options.

    Retries on ``retry_on`` with exponential backoff (jittered, capped at 60 s). The task body must be
    idempotent: load by id, check state, lock, upsert by natural keys.
    """

    def decorator(fn: F) -> F:
        return app.task(  # type: ignore[no-any-return]
            name=name.value,
            bind=False,
            acks_late=True,
            reject_on_worker_lost=True,
            autoretry_for=retry_on,
            retry_backoff=True,
            retry_backoff_max=60,
            retry_jitter=True,
            max_retries=max_retries,
            queue=QUEUE_OF[name].value,
        )(fn)

    return decorator


def send(app: Celery, name: TaskName, payload: BaseModel, **options: Any) -> Any:
    """Send a task by name (producers never import the consumer's code).

    Fire-and-forget by default (``ignore_result=True``): services read outcomes from Postgres, never from
    the result backend, and not subscribing to a result keeps a broker outage from stalling the sender
    for ~20 s in the Redis result consumer's reconnect loop. Pass ``ignore_result=False`` to ``.get()``.
    """
    options.setdefault("ignore_result", True)
    return app.send_task(
        name.value, kwargs=payload.model_dump(mode="json"), queue=QUEUE_OF[name].value, **options
    )


def broker_check(app: Celery) -> Callable[[], None]:
    """A quick check that ``app``'s broker answers (one per app, cached), raising DependencyUnavailable.

    With ``task_always_eager`` nothing is sent, so the check passes without a broker.
    """
    cached: Callable[[], None] | None = getattr(app, "_blindspot_broker_check", None)
    if cached is not None:
        return cached

    def check() -> None:
        if app.conf.task_always_eager:
            return
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
        except Exception as exc:
            raise DependencyUnavailable(
                "the task broker is unavailable; nothing was saved, retry later",
                context={"broker": app.conf.broker_url.split("@")[-1]},
            ) from exc

    app._blindspot_broker_check = check  # type: ignore[attr-defined]
    return check


def send_after_commit(
    session: Session, app: Celery, name: TaskName, payload: BaseModel, **options: Any
) -> None:
    """Send ``name`` once ``session`` commits; the commit is refused (503) while the broker is down."""
    on_commit(session, lambda: send(app, name, payload, **options), check=broker_check(app))


__all__ = ["RETRYABLE", "Task", "broker_check", "house_task", "make_celery", "send", "send_after_commit"]
