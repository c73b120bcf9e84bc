"""Upload images as data rows: check every image first, store bytes content-addressed, upsert rows.

An upload is all-or-nothing for the database: every file is decoded and checked before any row is
written, rows go in with one multi-row upsert, and the transaction commits once. Objects stored in S3
for an upload that fails later are unreferenced, content-addressed blobs (harmless, reused on retry).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.orm import Session

from services.ingest import repository as repo
from services.ingest.context import IngestContext
from services.ingest.domain import CheckedImage, check_global_key, check_image, object_key, thumbnail_key
from services.ingest.service import followups
from shared.db.models import Dataset
from shared.errors import BadRequest, Conflict, InvalidInput, PayloadTooLarge


@dataclass(frozen=True)
class UploadItem:
    name: str  # file name as sent (for messages)
    global_key: str
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _store(ctx: IngestContext, workspace_id: int, img: CheckedImage) -> None:
    px = ctx.settings.ingest.thumbnail_px
    ctx.store.put(object_key(workspace_id, img.sha256), img.data, img.media_type)
    ctx.store.put(thumbnail_key(workspace_id, img.sha256, px), img.thumbnail, "image/webp")


def _check_keys(items: list[UploadItem], limit: int) -> None:
    if len(items) > limit:
        raise PayloadTooLarge(f"{len(items)} files in one request; the limit is {limit}")
    if not items:
        raise BadRequest("no files in the request")
    seen: dict[str, str] = {}
    for it in items:
        check_global_key(it.global_key, it.name)
        if it.global_key in seen:
            raise InvalidInput(
                f"{it.name}: duplicate global key {it.global_key!r} in this upload (also {seen[it.global_key]})",
                context={"global_key": it.global_key, "reason": "duplicate_key"},
            )
        seen[it.global_key] = it.name


class RowUploader:
    """One upload (one transaction): feed batches, then ``finish`` upserts every row at once."""

    def __init__(self, session: Session, ctx: IngestContext, workspace_id: int, dataset: Dataset) -> None:
        self.session = session
        self.ctx = ctx
        self.workspace_id = workspace_id
        self.dataset = dataset
        self.pending: list[dict[str, Any]] = []
        self.keys: dict[str, str] = {}
        self.inflight: list[tuple[list[UploadItem], list[Future[CheckedImage]]]] = []
        self.max_inflight = 1

    def add_batch(self, items: list[UploadItem]) -> None:
        for it in items:
            check_global_key(it.global_key, it.name)
            if it.global_key in self.keys:
                raise InvalidInput(
                    f"{it.name}: duplicate global key {it.global_key!r} in this upload "
                    f"(also {self.keys[it.global_key]})",
                    context={"global_key": it.global_key, "reason": "duplicate_key"},
                )
            self.keys[it.global_key] = it.name
        existing = {
            r.global_key: r
            for r in repo.rows_by_keys(self.session, self.workspace_id, [i.global_key for i in items])
        }
        for it in items:
            row = existing.get(it.global_key)
            if row is not None and row.dataset_id != self.dataset.id:
                raise Conflict(
                    f"{it.name}: global key {it.global_key!r} already belongs to dataset {row.dataset_id}",
                    context={"global_key": it.global_key, "dataset_id": row.dataset_id},
                )
        limits = self.ctx.image_limits

        def work(it: UploadItem) -> CheckedImage:
            img = check_image(it.name, it.data, limits)
            row = existing.get(it.global_key)
            if row is None or row.sha256 != img.sha256:
                _store(self.ctx, self.workspace_id, img)
            return img

        # Double buffering: this batch decodes while the next one is being received.
        self.inflight.append((items, [self.ctx.pool.submit(work, it) for it in items]))
        while len(self.inflight) > self.max_inflight:
            self._drain_one()

    def _drain_one(self) -> None:
        items, futures = self.inflight.pop(0)
        try:
            checked = [f.result() for f in futures]
        except BaseException:
            for _, later in self.inflight:
                for f in later:
                    f.cancel()
            for f in futures:
                f.cancel()
            self.inflight.clear()
            raise
        px = self.ctx.settings.ingest.thumbnail_px
        for it, img in zip(items, checked, strict=True):
            self.pending.append(
                {
                    "workspace_id": self.workspace_id,
                    "dataset_id": self.dataset.id,
                    "global_key": it.global_key,
                    "object_key": object_key(self.workspace_id, img.sha256),
                    "thumbnail_key": thumbnail_key(self.workspace_id, img.sha256, px),
                    "width": img.width,
                    "height": img.height,
                    "sha256": img.sha256,
                    "media_type": img.media_type,
                    "metadata": it.metadata,
                }
            )

    def finish(self) -> UploadResult:
        while self.inflight:
            self._drain_one()
        if not self.pending:
            raise BadRequest("no files in the request")
        changed = repo.upsert_rows(self.session, self.pending)
        result = UploadResult()
        missing = [r["global_key"] for r in self.pending if r["global_key"] not in changed]
        ids = (
            {r.global_key: r.id for r in repo.rows_by_keys(self.session, self.workspace_id, missing)}
            if missing
            else {}
        )
        for r in self.pending:
            key = r["global_key"]
            if key in changed:
                row_id, inserted = changed[key]
                status = "created" if inserted else "updated"
            else:
                row_id, status = ids[key], "unchanged"
            setattr(result, status, getattr(result, status) + 1)
            result.rows.append(
                {
                    "global_key": key,
                    "id": row_id,
                    "status": status,
                    "sha256": r["sha256"],
                    "width": r["width"],
                    "height": r["height"],
                }
            )
        touched = [row_id for row_id, _ in changed.values()]
        if touched:
            followups.rows_changed(self.session, self.ctx, self.workspace_id, touched)
        return result


def upload(
    session: Session, ctx: IngestContext, workspace_id: int, dataset: Dataset, items: list[UploadItem]
) -> UploadResult:
    _check_keys(items, ctx.settings.ingest.max_files_per_request)
    up = RowUploader(session, ctx, workspace_id, dataset)
    up.add_batch(items)
    return up.finish()


def iter_tar(stream: IO[bytes], max_file_bytes: int) -> Iterator[UploadItem]:
    """Members of a tar stream as upload items: the member path is the global key."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise InvalidInput(f"{member.name}: only regular files are accepted in the stream")
                if member.size > max_file_bytes:
                    raise PayloadTooLarge(
                        f"{member.name}: {member.size} bytes exceeds the {max_file_bytes}-byte image limit",
                        context={"file": member.name},
                    )
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise BadRequest(f"{member.name}: truncated tar stream", context={"file": member.name})
                name = member.name[2:] if member.name.startswith("./") else member.name
                yield UploadItem(name=name, global_key=name, data=data)
        # Read past the end-of-archive blocks to the end of the body (size limits still apply).
        while stream.read(1 << 20):
            pass
    except tarfile.TarError as exc:
        raise BadRequest(f"the request body is not a readable tar stream ({exc})") from None


def upload_stream(
    session: Session,
    ctx: IngestContext,
    workspace_id: int,
    dataset: Dataset,
    items: Iterable[UploadItem],
    batch: int = 64,
) -> UploadResult:
    """The streaming bulk path: batches are checked and stored as they arrive; rows commit once at the end."""
    up = RowUploader(session, ctx, workspace_id, dataset)
    buf: list[UploadItem] = []
    limit = ctx.settings.ingest.max_files_per_request
    for count, it in enumerate(items, start=1):
        if count > limit:
            raise PayloadTooLarge(f"more than {limit} files in one stream request; split the upload")
        buf.append(it)
        if len(buf) >= batch:
            up.add_batch(buf)
            buf = []
    if buf:
        up.add_batch(buf)
    return up.finish()


def tar_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar of (name, bytes), for tests and small clients."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
