"""Datasets and their data rows (multipart upload, streaming bulk upload, keyset listing)."""

from __future__ import annotations

import io
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status

from services.ingest import repository as repo
from services.ingest.api.deps import CallerDep, ContextDep, SessionDep, WriterDep
from services.ingest.schemas import DatasetIn, DatasetOut, RowOut, RowPage, UploadOut
from services.ingest.service import catalog, rows
from shared.errors import BadRequest, InvalidInput, PayloadTooLarge

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut)
def create_dataset(body: DatasetIn, caller: WriterDep, session: SessionDep) -> DatasetOut:
    ds = catalog.create_dataset(session, caller.workspace_id, body.name, body.description)
    return DatasetOut.model_validate(ds)


@router.get("", response_model=list[DatasetOut])
def list_datasets(caller: CallerDep, session: SessionDep) -> list[DatasetOut]:
    return [
        DatasetOut.model_validate(d).model_copy(update={"num_rows": n})
        for d, n in repo.list_datasets(session, caller.workspace_id)
    ]


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: int, caller: CallerDep, session: SessionDep) -> DatasetOut:
    ds = catalog.get_dataset(session, caller.workspace_id, dataset_id)
    return DatasetOut.model_validate(ds).model_copy(update={"num_rows": repo.count_rows(session, ds.id)})


def _metadata(raw: str | None, keys: list[str]) -> list[dict[str, Any]]:
    if raw is None:
        return [{} for _ in keys]
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"metadata: malformed JSON ({exc.msg})") from None
    if isinstance(meta, dict):
        unknown = set(meta) - set(keys)
        if unknown:
            raise InvalidInput(f"metadata names keys that are not in this upload: {sorted(unknown)[:5]}")
        out = [meta.get(k, {}) for k in keys]
    elif isinstance(meta, list) and len(meta) == len(keys):
        out = meta
    else:
        raise BadRequest(
            "metadata must be a JSON object keyed by global key, or a list with one object per file"
        )
    for k, m in zip(keys, out, strict=True):
        if not isinstance(m, dict):
            raise InvalidInput(f"metadata of {k!r} must be a JSON object")
    return out


@router.post("/{dataset_id}/rows", response_model=UploadOut)
def upload_rows(
    dataset_id: int,
    caller: WriterDep,
    session: SessionDep,
    ctx: ContextDep,
    files: list[UploadFile] = File(..., description="Images; many per request."),
    global_keys: list[str] | None = Form(default=None, description="One per file; default: the file name."),
    metadata: str | None = Form(default=None, description="JSON: {global_key: {...}} or [{...}, ...]."),
) -> UploadOut:
    ds = catalog.get_dataset(session, caller.workspace_id, dataset_id)
    if global_keys is not None and len(global_keys) != len(files):
        raise BadRequest(f"{len(global_keys)} global_keys for {len(files)} files: give one per file")
    limit = ctx.settings.limits.max_image_bytes
    names = [f.filename or f"files[{i}]" for i, f in enumerate(files)]
    keys = global_keys or names
    metas = _metadata(metadata, keys)
    items = []
    for name, key, f, meta in zip(names, keys, files, metas, strict=True):
        data = f.file.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{name}: larger than the {limit}-byte image limit", context={"file": name})
        items.append(rows.UploadItem(name=name, global_key=key, data=data, metadata=meta))
    result = rows.upload(session, ctx, caller.workspace_id, ds, items)
    return UploadOut(**result.__dict__)


class _BodyReader(io.RawIOBase):
    """The request body as a blocking file, read from a worker thread while the body still arrives."""

    def __init__(self, request: Request, limit: int) -> None:
        self._chunks = request.stream()
        self._buf = b""
        self._eof = False
        self._size = 0
        self._limit = limit

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._eof = True
                break
            self._size += len(chunk)
            if self._size > self._limit:
                raise PayloadTooLarge(f"request body exceeds {self._limit} bytes; split the upload")
            self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


@router.post("/{dataset_id}/rows:stream", response_model=UploadOut)
async def upload_rows_stream(
    dataset_id: int, request: Request, caller: WriterDep, session: SessionDep, ctx: ContextDep
) -> UploadOut:
    """Streaming bulk upload: the body is a tar stream; each member's path is its global key.

    Members are decoded and stored while the rest of the body is still arriving; the rows commit
    together at the end (one transaction per request).
    """
    ds = await anyio.to_thread.run_sync(catalog.get_dataset, session, caller.workspace_id, dataset_id)
    reader = io.BufferedReader(_BodyReader(request, ctx.settings.limits.max_request_bytes), 1 << 20)

    def work() -> rows.UploadResult:
        items = rows.iter_tar(reader, ctx.settings.limits.max_image_bytes)
        return rows.upload_stream(session, ctx, caller.workspace_id, ds, items)

    result = await anyio.to_thread.run_sync(work)
    return UploadOut(**result.__dict__)


@router.get("/{dataset_id}/rows", response_model=RowPage)
def list_rows(
    dataset_id: int,
    caller: CallerDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> RowPage:
    ds = catalog.get_dataset(session, caller.workspace_id, dataset_id)
    if cursor is not None and not cursor.isdigit():
        raise BadRequest("cursor must be the next_cursor of a previous page")
    page = repo.list_rows(session, ds.id, int(cursor or 0), limit)
    nxt = str(page[-1].id) if len(page) == limit else None
    return RowPage(items=[RowOut.model_validate(r) for r in page], next_cursor=nxt)
