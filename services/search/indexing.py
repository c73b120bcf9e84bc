"""Write-side use cases run by the Celery tasks: embed rows and objects, keep payloads current.

Idempotent by construction: point ids derive from natural keys (``data_row_id``; run, kind, object id),
a row or object already in the store is not embedded again (only its payload is refreshed), and
``data_rows.embedded_at`` records the first success.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from services.search import repository as repo
from services.search.domain import (
    DIM,
    IMAGE_INDEXES,
    OBJECT_INDEXES,
    ObjectFacts,
    crop_box,
    decode,
    image_payload,
    object_payload,
    object_point_id,
    to_tensor,
)
from services.search.embedder import Embedder
from shared.adapters.vectors import PointId, VectorStore
from shared.db.models import DataRow, ModelRun
from shared.errors import DependencyUnavailable, InvalidInput
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)


MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


class Blobs(Protocol):
    def get(self, key: str) -> bytes: ...


@dataclass
class IndexResult:
    embedded: int = 0
    refreshed: int = 0
    skipped: list[int] = field(default_factory=list)  # rows/objects whose image could not be used


def ensure_collections(store: VectorStore, settings: Settings) -> None:
    store.ensure_collection(settings.qdrant.image_collection, DIM, IMAGE_INDEXES)
    store.ensure_collection(settings.qdrant.object_collection, DIM, OBJECT_INDEXES)


def _fetch_images(blobs: Blobs, rows: Sequence[DataRow], threads: int = 8) -> dict[int, Image.Image | None]:
    """Download and decode images in parallel. Undecodable or missing images map to None; an S3
    outage raises DependencyUnavailable (the task retries)."""

    def one(r: DataRow) -> tuple[int, Image.Image | None]:
        try:
            data = blobs.get(r.object_key)
        except Exception as exc:
            if getattr(exc, "code", None) in MISSING_CODES:  # the object is gone: skip the row
                log.warning("image missing", data_row_id=r.id, key=r.object_key)
                return r.id, None
            raise DependencyUnavailable(f"S3 read of {r.object_key} failed: {exc}") from exc
        try:
            return r.id, decode(data)
        except InvalidInput as exc:
            log.warning("image undecodable", data_row_id=r.id, error=exc.detail[:200])
            return r.id, None

    if not rows:
        return {}
    with ThreadPoolExecutor(max_workers=min(threads, len(rows))) as pool:
        return dict(pool.map(one, rows))


def _refresh(
    store: VectorStore,
    collection: str,
    workspace_id: int,
    payloads: dict[PointId, dict[str, Any]],
) -> int:
    """Rewrite the payload of points already stored (vectors kept): one retrieve and one upsert, and the
    payload is replaced whole, so keys that no longer apply disappear."""
    if not payloads:
        return 0
    recs = [
        r
        for r in store.retrieve(collection, list(payloads), workspace_id=workspace_id)
        if r.vector is not None
    ]
    if recs:
        store.upsert(
            collection,
            [r.id for r in recs],
            np.stack([r.vector for r in recs if r.vector is not None]),
            [payloads[r.id] for r in recs],
        )
    return len(recs)


def _embed_all(embedder: Embedder, tensors: list[np.ndarray], batch: int) -> np.ndarray:
    out = [embedder.embed(np.stack(tensors[i : i + batch])) for i in range(0, len(tensors), batch)]
    return np.concatenate(out) if out else np.zeros((0, DIM), dtype=np.float32)


def embed_rows(
    session: Session,
    store: VectorStore,
    embedder: Callable[[], Embedder],
    blobs: Blobs,
    settings: Settings,
    workspace_id: int,
    row_ids: Sequence[int],
) -> IndexResult:
    """Embed rows not in the store yet; refresh the payload of the others."""
    images = settings.qdrant.image_collection
    rows = repo.lock_rows(session, workspace_id, row_ids)
    facts = repo.row_facts(session, workspace_id, [r.id for r in rows])
    present = {
        int(r.id)
        for r in store.retrieve(images, [r.id for r in rows], workspace_id=workspace_id, with_vectors=False)
    }
    todo = [r for r in rows if r.id not in present or r.embedded_at is None]
    result = IndexResult()
    batch = settings.search.embed_batch
    for i in range(0, len(todo), batch * 4):
        chunk = todo[i : i + batch * 4]
        imgs = _fetch_images(blobs, chunk)
        ok = [r for r in chunk if imgs.get(r.id) is not None]
        result.skipped += [r.id for r in chunk if imgs.get(r.id) is None]
        tensors = [to_tensor(imgs[r.id]) for r in ok]  # type: ignore[arg-type]
        vecs = _embed_all(embedder(), tensors, batch)
        store.upsert(images, [r.id for r in ok], vecs, [image_payload(facts[r.id]) for r in ok])
        repo.mark_embedded(session, [r.id for r in ok], datetime.now(UTC))
        result.embedded += len(ok)
    if result.embedded and settings.search.index_after:
        store.optimize(images, min_unindexed=settings.search.index_after)
    stale = {r.id: image_payload(facts[r.id]) for r in rows if r.id in present and r.embedded_at is not None}
    result.refreshed = _refresh(store, images, workspace_id, stale)  # type: ignore[arg-type]
    return result


def embed_objects(
    session: Session,
    store: VectorStore,
    embedder: Callable[[], Embedder],
    blobs: Blobs,
    settings: Settings,
    model_run_id: int,
    row_ids: Sequence[int],
) -> IndexResult:
    """Embed the crops of a run's GT boxes and predictions on these rows (payload: class, match status,
    error type, split); refresh the image payloads of the rows (their runs, splits and errors)."""
    images, objects = settings.qdrant.image_collection, settings.qdrant.object_collection
    run = session.get(ModelRun, model_run_id)
    result = IndexResult()
    if run is None:
        return result
    ws = run.workspace_id
    rows = {r.id: r for r in repo.rows_by_id(session, ws, row_ids)}
    facts = repo.row_facts(session, ws, list(rows))
    objs = [o for o in repo.run_objects(session, run, list(rows)) if o.data_row_id in rows]
    pid = {object_point_id(o.model_run_id, o.kind, o.object_id): o for o in objs}
    present = {str(r.id) for r in store.retrieve(objects, list(pid), workspace_id=ws, with_vectors=False)}
    todo: dict[int, list[ObjectFacts]] = defaultdict(list)
    for p, o in pid.items():
        if p not in present:
            todo[o.data_row_id].append(o)
    stale = {p: object_payload(o, facts[o.data_row_id]) for p, o in pid.items() if p in present}
    result.refreshed = _refresh(store, objects, ws, stale)  # type: ignore[arg-type]
    imgs = _fetch_images(blobs, [rows[r] for r in todo])
    tensors: list[np.ndarray] = []
    done: list[ObjectFacts] = []
    for row_id, row_objs in todo.items():
        img = imgs.get(row_id)
        if img is None:
            result.skipped += [o.object_id for o in row_objs]
            continue
        for o in row_objs:
            crop = crop_box(
                img, o.box, context=settings.search.crop_context, min_px=settings.search.min_crop_px
            )
            if crop is None:
                result.skipped.append(o.object_id)
                continue
            tensors.append(to_tensor(crop))
            done.append(o)
    vecs = _embed_all(embedder(), tensors, settings.search.embed_batch)
    store.upsert(
        objects,
        [object_point_id(o.model_run_id, o.kind, o.object_id) for o in done],
        vecs,
        [object_payload(o, facts[o.data_row_id]) for o in done],
    )
    result.embedded = len(done)
    if done and settings.search.index_after:
        store.optimize(objects, min_unindexed=settings.search.index_after)
    _refresh(store, images, ws, {row_id: image_payload(f) for row_id, f in facts.items()})  # type: ignore[arg-type]
    return result
