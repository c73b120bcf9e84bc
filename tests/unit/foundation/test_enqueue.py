"""shared/db/enqueue.py + shared.celery.send_after_commit: tasks go out after commit, never on rollback,
and a commit whose tasks cannot be sent (broker down) is refused before anything is written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.orm import Session

from shared.celery import broker_check, make_celery, send_after_commit
from shared.contracts.tasks import AggregateRunPayload, TaskName
from shared.db.enqueue import on_commit
from shared.errors import DependencyUnavailable
from shared.settings import Settings

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True))


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def count(session: Session) -> int:
    return len(session.execute(select(things)).all())


def test_callbacks_run_after_commit_and_are_dropped_on_rollback(session: Session) -> None:
    ran: list[str] = []
    session.execute(insert(things).values(id=1))
    on_commit(session, lambda: ran.append("a"))
    assert ran == []
    session.commit()
    assert ran == ["a"]
    session.execute(insert(things).values(id=2))
    on_commit(session, lambda: ran.append("b"))
    session.rollback()
    session.commit()
    assert ran == ["a"] and count(session) == 1


def test_a_failing_check_refuses_the_commit(session: Session) -> None:
    ran: list[str] = []

    def broker_down() -> None:
        raise DependencyUnavailable("broker down")

    session.execute(insert(things).values(id=1))
    on_commit(session, lambda: ran.append("sent"), check=broker_down)
    with pytest.raises(DependencyUnavailable):
        session.commit()
    session.rollback()
    assert ran == [] and count(session) == 0
    # The checks went with the rolled-back transaction.
    session.execute(insert(things).values(id=2))
    session.commit()
    assert count(session) == 1


def test_send_after_commit_refuses_while_the_broker_is_down(session: Session) -> None:
    app = make_celery("t", Settings(redis={"url": "redis://127.0.0.1:1/0"}))
    assert broker_check(app) is broker_check(app), "one check per app"
    session.execute(insert(things).values(id=1))
    send_after_commit(session, app, TaskName.metrics_aggregate_run, AggregateRunPayload(model_run_id=1))
    with pytest.raises(DependencyUnavailable) as info:
        session.commit()
    assert "broker" in info.value.detail and info.value.status_code == 503
    session.rollback()
    assert count(session) == 0
