"""Celery tasks of queue "inference". Each takes ids, owns its transaction, and is safe to run twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from services.inference import repository as repo
from services.inference import service
from services.inference.detector import Detector
from services.inference.runtime import make_backend
from services.inference.worker import app
from shared.adapters.storage import ObjectStore
from shared.celery import RETRYABLE, house_task
from shared.contracts.tasks import InferenceRunPayload, TaskName
from shared.db.session import make_engine, make_sessionmaker, session_scope
from shared.logging import get_logger
from shared.settings import Settings, get_settings

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    detector: Detector
    celery: Celery
    fetch_pool: ThreadPoolExecutor

    def close(self) -> None:
        self.detector.close()
        self.fetch_pool.shutdown(wait=False)


_runtime: Runtime | None = None


def build_runtime(settings: Settings, celery: Celery) -> Runtime:
    backend, spec = make_backend(settings)
    return Runtime(
        settings=settings,
        sessions=make_sessionmaker(make_engine(settings.database)),
        store=ObjectStore(settings.s3),
        detector=Detector(backend, spec, settings.inference),
        celery=celery,
        fetch_pool=ThreadPoolExecutor(settings.inference.fetch_workers, thread_name_prefix="s3-fetch"),
    )


def bind_runtime(rt: Runtime | None) -> None:
    """Use these clients (tests bind a runtime pointing at their own servers)."""
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    """The worker's clients and detector, built on the first task (never at import time)."""
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(get_settings(), app)
    return _runtime


def run_inference(rt: Runtime, payload: InferenceRunPayload) -> dict[str, Any]:
    """The task body: progress shows on the job; retryable failures propagate, others fail the job."""
    if payload.job_id is not None:
        with session_scope(rt.sessions) as session:
            repo.mark_running(session, payload.job_id)
    try:
        with session_scope(rt.sessions) as session:
            result = service.run_chunk(session, rt.store, rt.detector, rt.celery, payload, rt.fetch_pool)
    except RETRYABLE:
        raise
    except Exception as exc:
        log.error("inference chunk failed", model_run_id=payload.model_run_id, error=str(exc)[:300])
        if payload.job_id is not None:
            with session_scope(rt.sessions) as session:
                repo.mark_failed(session, payload.job_id, f"{type(exc).__name__}: {exc}")
        raise
    return asdict(result)


@house_task(app, TaskName.inference_run)
def run(model_run_id: int, data_row_ids: list[int], job_id: str | None = None) -> dict[str, Any]:
    payload = InferenceRunPayload(model_run_id=model_run_id, data_row_ids=data_row_ids, job_id=job_id)
    return run_inference(runtime(), payload)
