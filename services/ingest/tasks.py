"""Celery tasks of the ingest service. Each takes ids and is safe to run twice."""

from __future__ import annotations

import uuid
from typing import Any

from services.ingest.service import imports
from services.ingest.worker import app, context
from shared.celery import house_task
from shared.contracts.tasks import IngestImportPayload, TaskName
from shared.errors import BlindspotError
from shared.logging import get_logger

log = get_logger(__name__)


@house_task(app, TaskName.ingest_import)
def ingest_import(**kwargs: Any) -> dict[str, Any]:
    """Run a queued import job. Bad input fails the job (recorded on it); outages retry."""
    payload = IngestImportPayload.model_validate(kwargs)
    try:
        return imports.run_job(context(), uuid.UUID(str(payload.job_id)))
    except BlindspotError as exc:
        if exc.status_code >= 500:
            raise
        log.info("import rejected", job_id=str(payload.job_id), detail=exc.detail)
        return {"error": exc.to_dict()}
