"""shared/celery.py: the reliability options every worker runs with, and the routing of every task."""

from __future__ import annotations

from shared.celery import RETRYABLE, house_task, make_celery
from shared.contracts.tasks import QUEUE_OF, Queue, TaskName
from shared.errors import DependencyUnavailable
from shared.settings import Settings


def _settings() -> Settings:
    return Settings(
        redis={"url": "redis://127.0.0.1:1/0"},
        celery={"visibility_timeout_s": 300, "task_time_limit_s": 200, "unacked_restore_interval_s": 7},
    )


def test_reliability_options() -> None:
    conf = make_celery("t", _settings()).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == 200
    assert conf.task_soft_time_limit == 190
    assert conf.broker_transport_options == {
        "visibility_timeout": 300,
        "unacked_restore_interval": 7,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 60,
    }
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]


def test_every_task_is_routed_to_its_queue() -> None:
    conf = make_celery("t", _settings()).conf
    assert {q.name for q in conf.task_queues} == {q.value for q in Queue}
    assert set(QUEUE_OF) == set(TaskName), "every task name needs a queue"
    for name, queue in QUEUE_OF.items():
        assert conf.task_routes[name.value] == {"queue": queue.value}


def test_broker_defaults_to_redis_and_can_be_separate() -> None:
    app = make_celery("t", _settings())
    assert app.conf.broker_url == "redis://127.0.0.1:1/0"
    other = Settings(celery={"broker_url": "redis://127.0.0.1:1/5"})
    assert make_celery("t", other).conf.broker_url == "redis://127.0.0.1:1/5"


def test_house_task_options() -> None:
    app = make_celery("t", _settings())

    @house_task(app, TaskName.metrics_aggregate_run)
    def aggregate(model_run_id: int) -> int:
        return model_run_id

    task = app.tasks[TaskName.metrics_aggregate_run.value]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.queue == Queue.metrics.value
    assert tuple(task.autoretry_for) == RETRYABLE
    assert DependencyUnavailable in task.autoretry_for
    assert task.retry_backoff is True and task.retry_backoff_max == 60 and task.retry_jitter is True
    assert task.max_retries == 8


def test_eager_mode_runs_inline() -> None:
    settings = Settings(celery={"task_always_eager": True})
    app = make_celery("t", settings)
    seen: list[int] = []

    @house_task(app, TaskName.metrics_aggregate_run)
    def aggregate(model_run_id: int) -> int:
        seen.append(model_run_id)
        return model_run_id * 2

    result = aggregate.delay(model_run_id=4)
    assert result.successful() and result.result == 8 and seen == [4]  # no .get(): no blocking check


def test_outages_are_retryable_and_the_redis_transport_survives_reconnects() -> None:
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc
    import urllib3.exceptions

    for exc in (
        sqlalchemy.exc.OperationalError,
        redis.exceptions.ConnectionError,
        kombu.exceptions.OperationalError,
        urllib3.exceptions.MaxRetryError,
    ):
        assert issubclass(exc, RETRYABLE), exc
    assert not issubclass(ValueError, RETRYABLE)
    app = make_celery("t", _settings())
    assert app.conf.broker_transport == "shared.celery:RedisTransport"
    with app.connection_for_write() as conn:
        assert type(conn.transport).__name__ == "RedisTransport"
    amqp = make_celery("t", Settings(celery={"broker_url": "amqp://127.0.0.1:1//"}))
    assert amqp.conf.broker_transport is None
