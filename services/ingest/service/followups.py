"""Background work an ingest commit asks for: sent after the commit, dropped on rollback."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from services.ingest.context import IngestContext
from services.ingest.domain import chunks
from shared.celery import broker_check, send
from shared.contracts.tasks import (
    AggregateRunPayload,
    ComputeRowsPayload,
    EmbedRowsPayload,
    MatchSlicesPayload,
    TaskName,
)
from shared.db.enqueue import on_commit


def rows_changed(session: Session, ctx: IngestContext, workspace_id: int, row_ids: Sequence[int]) -> None:
    """New or changed images: embed them and match them against saved slices."""
    ids = sorted(set(row_ids))
    size = ctx.settings.ingest.metrics_chunk_rows
    for part in chunks(ids, size):

        def _send(part: list[int] = part) -> None:
            send(
                ctx.celery,
                TaskName.search_embed_rows,
                EmbedRowsPayload(workspace_id=workspace_id, data_row_ids=part),
            )
            send(
                ctx.celery,
                TaskName.search_match_slices,
                MatchSlicesPayload(workspace_id=workspace_id, data_row_ids=part),
            )

        on_commit(session, _send, check=broker_check(ctx.celery))


def boxes_changed(session: Session, ctx: IngestContext, runs: dict[int, list[int]]) -> None:
    """GT or predictions changed on these rows of these runs: recompute their metrics (chunked)."""
    size = ctx.settings.ingest.metrics_chunk_rows
    for run_id, row_ids in sorted(runs.items()):
        for part in chunks(sorted(set(row_ids)), size):

            def _send(run_id: int = run_id, part: list[int] = part) -> None:
                send(
                    ctx.celery,
                    TaskName.metrics_compute_rows,
                    ComputeRowsPayload(model_run_id=run_id, data_row_ids=part),
                )

            on_commit(session, _send, check=broker_check(ctx.celery))


def thresholds_changed(session: Session, ctx: IngestContext, run_id: int) -> None:
    """Thresholds moved: only the cheap aggregate path (matches are stored threshold-free)."""
    on_commit(
        session,
        lambda: send(
            ctx.celery,
            TaskName.metrics_aggregate_run,
            AggregateRunPayload(model_run_id=run_id, thresholds_changed=True),
        ),
        check=broker_check(ctx.celery),
    )
