"""Datasets, classes, model runs and split membership: the small use cases."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.ingest import repository as repo
from services.ingest.context import IngestContext
from services.ingest.domain import check_global_key
from services.ingest.service import followups
from shared.db.models import Dataset, ModelRun, ObjectClass
from shared.errors import Conflict, InvalidInput, NotFound


def create_dataset(session: Session, workspace_id: int, name: str, description: str) -> Dataset:
    if not repo.workspace_exists(session, workspace_id):
        raise NotFound(f"workspace {workspace_id} does not exist")
    if repo.dataset_by_name(session, workspace_id, name) is not None:
        raise Conflict(f"a dataset named {name!r} already exists", context={"name": name})
    return repo.create_dataset(session, workspace_id, name, description)


def get_dataset(session: Session, workspace_id: int, dataset_id: int) -> Dataset:
    ds = repo.get_dataset(session, workspace_id, dataset_id)
    if ds is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return ds


def create_classes(
    session: Session, workspace_id: int, items: list[tuple[str, int | None]]
) -> list[ObjectClass]:
    """Create classes (idempotent by name). Every class gets a unique external id (COCO id / YOLO index)."""
    if not repo.workspace_exists(session, workspace_id):
        raise NotFound(f"workspace {workspace_id} does not exist")
    repo.lock_classes(session, workspace_id)
    existing = repo.list_classes(session, workspace_id)
    by_name = {c.name: c for c in existing}
    used = {c.external_id: c.name for c in existing if c.external_id is not None}
    new: list[tuple[str, int]] = []
    next_ext = max(used, default=-1) + 1
    seen: set[str] = set()
    for name, ext in items:
        if name in seen:
            raise InvalidInput(
                f"class {name!r} appears twice in the request", context={"reason": "duplicate_key"}
            )
        seen.add(name)
        if name in by_name:
            if ext is not None and by_name[name].external_id != ext:
                raise Conflict(f"class {name!r} exists with external id {by_name[name].external_id}")
            continue
        if ext is not None and ext in used:
            raise Conflict(f"external id {ext} is already used by class {used[ext]!r}")
        if ext is None:
            while next_ext in used:
                next_ext += 1
            ext = next_ext
        used[ext] = name
        new.append((name, ext))
    repo.insert_classes(session, workspace_id, new)
    return repo.list_classes(session, workspace_id)


def create_run(session: Session, workspace_id: int, fields: dict[str, Any]) -> ModelRun:
    if not repo.workspace_exists(session, workspace_id):
        raise NotFound(f"workspace {workspace_id} does not exist")
    if repo.run_by_name(session, workspace_id, fields["name"], fields["version"]) is not None:
        raise Conflict(f"run {fields['name']!r} version {fields['version']!r} already exists")
    return repo.create_run(session, workspace_id, **fields)


def get_run(session: Session, workspace_id: int, run_id: int, *, lock: bool = False) -> ModelRun:
    run = repo.get_run(session, workspace_id, run_id, lock=lock)
    if run is None:
        raise NotFound(f"model run {run_id} not found")
    return run


def update_run(
    session: Session, ctx: IngestContext, workspace_id: int, run_id: int, changes: dict[str, Any]
) -> ModelRun:
    run = get_run(session, workspace_id, run_id, lock=True)
    thresholds = False
    for field, value in changes.items():
        if getattr(run, field) != value:
            setattr(run, field, value)
            thresholds = thresholds or field in ("iou_threshold", "confidence_threshold")
    session.flush()
    if thresholds:
        followups.thresholds_changed(session, ctx, run.id)
    return run


def assign_rows(
    session: Session, ctx: IngestContext, workspace_id: int, run_id: int, items: list[dict[str, Any]]
) -> dict[str, int]:
    """Membership + split for each ``{global_key | data_row_id, split}``; unknown keys are a 4xx."""
    get_run(session, workspace_id, run_id, lock=True)
    keys = [str(i["global_key"]) for i in items if i.get("global_key") is not None]
    ids = [int(i["data_row_id"]) for i in items if i.get("data_row_id") is not None]
    by_key = {r.global_key: r.id for r in repo.rows_by_keys(session, workspace_id, keys)} if keys else {}
    known_ids = {r.id for r in repo.rows_by_ids(session, workspace_id, ids)} if ids else set()
    row_ids: list[int] = []
    splits: list[str] = []
    seen: set[int] = set()
    for n, item in enumerate(items):
        where = f"item {n}"
        if item.get("global_key") is not None:
            key = check_global_key(str(item["global_key"]), where)
            if key not in by_key:
                raise InvalidInput(
                    f"{where}: unknown global key {key!r}", context={"reason": "unknown_global_key"}
                )
            rid = by_key[key]
        else:
            rid = int(item["data_row_id"])
            if rid not in known_ids:
                raise InvalidInput(f"{where}: unknown data row {rid}", context={"reason": "unknown_data_row"})
        if rid in seen:
            raise InvalidInput(f"{where}: data row {rid} appears twice", context={"reason": "duplicate_key"})
        seen.add(rid)
        row_ids.append(rid)
        splits.append(str(item["split"]))
    changed = repo.set_run_splits(session, run_id, row_ids, splits)
    if changed:
        # Splits change the per-split aggregates only; rows that just joined need their row metrics.
        followups.boxes_changed(session, ctx, {run_id: row_ids})
    return {"rows": len(row_ids), "changed": changed}
