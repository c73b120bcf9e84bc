"""Labeling use cases: projects, idempotent batches, export with pre-labels, import of labels as GT."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.domain import Principal
from services.gateway.repository import labeling as repo
from services.gateway.schemas import BatchCreate
from services.gateway.service.catalog import selection_ids
from services.gateway.state import GatewayState
from shared.celery import send
from shared.contracts.tasks import ComputeRowsPayload, TaskName
from shared.db.enqueue import on_commit
from shared.db.models import Batch
from shared.errors import BadRequest, Conflict, InvalidInput, NotFound
from shared.logging import get_logger

log = get_logger(__name__)


def batch_out(b: Batch) -> dict[str, Any]:
    return {
        "id": b.id,
        "project_id": b.project_id,
        "name": b.name,
        "priority": b.priority,
        "idempotency_key": b.idempotency_key,
        "model_run_id": b.model_run_id,
        "created_at": b.created_at,
    }


async def create_project(
    session: AsyncSession, principal: Principal, name: str, description: str
) -> dict[str, Any]:
    pid = await repo.create_project(session, principal.workspace_id, name, description)
    if pid is None:
        raise Conflict(f"labeling project {name!r} exists already", context={"field": "name"})
    project = await repo.get_project(session, principal.workspace_id, pid)
    assert project is not None
    return {
        "id": pid,
        "name": name,
        "description": description,
        "num_rows": 0,
        "created_at": project.created_at,
    }


async def list_projects(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    return [
        {
            "id": r["project"].id,
            "name": r["project"].name,
            "description": r["project"].description,
            "num_rows": r["num_rows"],
            "created_at": r["project"].created_at,
        }
        for r in await repo.list_projects(session, principal.workspace_id)
    ]


async def _project(session: AsyncSession, principal: Principal, project_id: int) -> Any:
    project = await repo.get_project(session, principal.workspace_id, project_id)
    if project is None:
        raise NotFound(
            f"labeling project {project_id} not found in this workspace", context={"project_id": project_id}
        )
    return project


async def list_batches(session: AsyncSession, principal: Principal, project_id: int) -> list[dict[str, Any]]:
    await _project(session, principal, project_id)
    return [batch_out(b) for b in await repo.list_batches(session, principal.workspace_id, project_id)]


async def _replay(
    session: AsyncSession, existing: Batch, project_id: int, body: BatchCreate
) -> dict[str, Any]:
    if existing.project_id != project_id or existing.name != body.name:
        raise Conflict(
            f"idempotency_key {body.idempotency_key!r} was used for another batch ({existing.id})",
            context={"field": "idempotency_key", "batch_id": existing.id},
        )
    return {
        "batch": batch_out(existing),
        "added": await repo.batch_row_ids(session, existing.id),
        "skipped": [],
        "replayed": True,
    }


async def create_batch(
    session: AsyncSession, state: GatewayState, principal: Principal, project_id: int, body: BatchCreate
) -> dict[str, Any]:
    await _project(session, principal, project_id)
    existing = await repo.batch_by_key(session, principal.workspace_id, body.idempotency_key)
    if existing is not None:
        return await _replay(session, existing, project_id, body)
    run_id = body.model_run_id or body.selection.model_run_id
    if run_id is not None and await repo.get_run(session, principal.workspace_id, run_id) is None:
        raise NotFound(f"model run {run_id} not found in this workspace", context={"field": "model_run_id"})
    ids = await selection_ids(session, state, principal, body.selection, body.max_rows)
    try:
        async with session.begin_nested():
            batch_id = await repo.insert_batch(
                session,
                principal.workspace_id,
                project_id,
                body.name,
                body.priority,
                body.idempotency_key,
                run_id,
            )
    except IntegrityError as exc:  # pragma: no cover - constraint race
        raise Conflict("batch could not be created (concurrent change); retry") from exc
    if batch_id is None:  # a concurrent retry with the same key won the insert
        existing = await repo.batch_by_key(session, principal.workspace_id, body.idempotency_key)
        assert existing is not None
        return await _replay(session, existing, project_id, body)
    added = await repo.add_batch_rows(session, batch_id, project_id, ids)
    batch = await repo.get_batch(session, principal.workspace_id, batch_id)
    assert batch is not None
    added_set = set(added)
    return {
        "batch": batch_out(batch),
        "added": added,
        "skipped": [i for i in ids if i not in added_set],
        "replayed": False,
    }


async def _batch(session: AsyncSession, principal: Principal, batch_id: int) -> Batch:
    batch = await repo.get_batch(session, principal.workspace_id, batch_id)
    if batch is None:
        raise NotFound(f"batch {batch_id} not found in this workspace", context={"batch_id": batch_id})
    return batch


async def export_batch(
    session: AsyncSession, state: GatewayState, principal: Principal, batch_id: int, fmt: str
) -> Any:
    batch = await _batch(session, principal, batch_id)
    rows = await repo.export_rows(session, batch.id)
    ids = [r.id for r in rows]
    preds: dict[int, list[tuple[Any, str]]] = {i: [] for i in ids}
    run = None
    if batch.model_run_id is not None:
        run = await repo.get_run(session, principal.workspace_id, batch.model_run_id)
    if run is not None and ids:
        for p, name in await repo.predictions_for(session, run.id, ids, run.confidence_threshold):
            preds[p.data_row_id].append((p, name))
    model_version = f"{run.name}:{run.version}" if run is not None else None
    if fmt == "coco":
        classes = await repo.classes(session, principal.workspace_id)
        return {
            "info": {"description": f"Blindspot batch {batch.id} ({batch.name})", "version": "1.0"},
            "images": [
                {
                    "id": r.id,
                    "file_name": r.global_key,
                    "width": r.width,
                    "height": r.height,
                    "coco_url": state.presign(r.object_key),
                }
                for r in rows
            ],
            "categories": [{"id": c.id, "name": c.name} for c in classes],
            "annotations": [
                {
                    "id": p.id,
                    "image_id": p.data_row_id,
                    "category_id": p.class_id,
                    "bbox": [p.x, p.y, p.w, p.h],
                    "area": p.w * p.h,
                    "iscrowd": 0,
                    "score": p.confidence,
                }
                for i in ids
                for p, _ in preds[i]
            ],
        }
    tasks = []
    for r in rows:
        result = [
            {
                "id": f"p{p.id}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": r.width,
                "original_height": r.height,
                "image_rotation": 0,
                "value": {
                    "x": 100.0 * p.x / r.width,
                    "y": 100.0 * p.y / r.height,
                    "width": 100.0 * p.w / r.width,
                    "height": 100.0 * p.h / r.height,
                    "rotation": 0,
                    "rectanglelabels": [name],
                },
                "score": p.confidence,
            }
            for p, name in preds[r.id]
        ]
        task: dict[str, Any] = {
            "id": r.id,
            "data": {"image": state.presign(r.object_key), "data_row_id": r.id, "global_key": r.global_key},
            "meta": {"batch_id": batch.id, "priority": batch.priority},
        }
        if result:
            scores = [x["score"] for x in result]
            task["predictions"] = [
                {"model_version": model_version, "score": sum(scores) / len(scores), "result": result}
            ]
        tasks.append(task)
    return tasks


def _box(values: list[Any], where: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: a box needs four numbers", context={"field": where}) from exc
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
        raise InvalidInput(f"{where}: box must be finite with w, h >= 0", context={"field": where})
    return x, y, w, h


def parse_labels(
    payload: Any, sizes: dict[int, tuple[int, int]], class_ids: dict[str, int]
) -> dict[int, list[dict[str, Any]]]:
    """Label Studio tasks JSON or COCO -> new GT boxes per row (absolute pixels, xywh)."""
    out: dict[int, list[dict[str, Any]]] = {}

    def cls(name: Any, where: str) -> int:
        if not isinstance(name, str) or name not in class_ids:
            raise InvalidInput(f"{where}: unknown class {name!r}", context={"field": where})
        return class_ids[name]

    def row(rid: Any, where: str) -> int:
        if not isinstance(rid, int) or rid not in sizes:
            raise BadRequest(f"{where}: row {rid!r} is not in this batch", context={"field": where})
        return rid

    if isinstance(payload, dict) and "images" in payload and "annotations" in payload:
        cat_names = {c.get("id"): c.get("name") for c in payload.get("categories", []) if isinstance(c, dict)}
        for img in payload["images"]:
            out.setdefault(row(img.get("id") if isinstance(img, dict) else None, "images[].id"), [])
        for k, a in enumerate(payload["annotations"]):
            where = f"annotations[{k}]"
            if not isinstance(a, dict):
                raise InvalidInput(f"{where}: must be an object", context={"field": where})
            rid = row(a.get("image_id"), f"{where}.image_id")
            x, y, w, h = _box(a.get("bbox") or [], f"{where}.bbox")
            cid = cls(cat_names.get(a.get("category_id")), f"{where}.category_id")
            out.setdefault(rid, []).append(
                {
                    "class_id": cid,
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "area": float(a.get("area") or w * h),
                    "iscrowd": bool(a.get("iscrowd", 0)),
                }
            )
        return out
    if not isinstance(payload, list):
        raise BadRequest(
            "labels must be Label Studio tasks (a JSON list) or a COCO object", context={"field": "body"}
        )
    for t, task in enumerate(payload):
        where = f"[{t}]"
        if not isinstance(task, dict):
            raise InvalidInput(f"{where}: a task must be an object", context={"field": where})
        data = task.get("data") or {}
        rid = row(data.get("data_row_id", task.get("id")), f"{where}.data.data_row_id")
        anns = [
            a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if not anns:
            continue
        W, H = sizes[rid]
        boxes = []
        for k, res in enumerate(anns[-1].get("result") or []):
            rw = f"{where}.annotations[-1].result[{k}]"
            if not isinstance(res, dict) or res.get("type") != "rectanglelabels":
                continue
            v = res.get("value") or {}
            labels = v.get("rectanglelabels") or []
            ow = float(res.get("original_width") or W)
            oh = float(res.get("original_height") or H)
            x, y, w, h = _box([v.get("x"), v.get("y"), v.get("width"), v.get("height")], rw)
            x, y, w, h = x * ow / 100, y * oh / 100, w * ow / 100, h * oh / 100
            boxes.append(
                {
                    "class_id": cls(labels[0] if labels else None, rw),
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "area": w * h,
                    "iscrowd": False,
                }
            )
        out[rid] = boxes
    return out


async def import_labels(
    session: AsyncSession, state: GatewayState, principal: Principal, batch_id: int, payload: Any
) -> dict[str, Any]:
    """Replace the GT of the labeled rows of a batch and re-trigger their metrics in every run, after commit."""
    batch = await _batch(session, principal, batch_id)
    rows = await repo.export_rows(session, batch.id)
    sizes = {r.id: (r.width, r.height) for r in rows}
    class_ids = {c.name: c.id for c in await repo.classes(session, principal.workspace_id)}
    boxes = parse_labels(payload, sizes, class_ids)
    written = await repo.replace_annotations(session, principal.workspace_id, boxes)
    runs = await repo.runs_of_rows(session, principal.workspace_id, list(boxes))
    recompute = [
        {"model_run_id": run_id, "data_row_ids": sorted(ids)} for run_id, ids in sorted(runs.items())
    ]

    def enqueue() -> None:
        for item in recompute:
            try:
                send(state.celery, TaskName.metrics_compute_rows, ComputeRowsPayload.model_validate(item))
            except (
                Exception
            ) as exc:  # the labels are committed; a broker outage must not turn that into a 5xx
                log.error(
                    "metrics recompute not queued", model_run_id=item["model_run_id"], error=str(exc)[:200]
                )

    if recompute:
        on_commit(session.sync_session, enqueue)
    return {"rows_updated": len(boxes), "boxes_written": written, "metrics_recompute": recompute}
