"""Export a dataset's ground truth or a run's predictions in any import format (lossless round trip)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from services.ingest import repository as repo
from services.ingest.formats import coco, labelbox, ultralytics, voc, yolo
from services.ingest.formats.base import ExportBoxes, ExportClass, ExportData, ExportRow
from shared.errors import BadRequest

MEDIA = {
    "coco": ("application/json", "json"),
    "ultralytics": ("application/json", "json"),
    "labelbox": ("application/x-ndjson", "ndjson"),
    "yolo": ("application/zip", "zip"),
    "voc": ("application/zip", "zip"),
}


def _classes(session: Session, workspace_id: int) -> list[ExportClass]:
    return [
        ExportClass(id=c.id, name=c.name, external_id=c.external_id if c.external_id is not None else c.id)
        for c in repo.list_classes(session, workspace_id)
    ]


def _rows(refs: list[repo.RowRef]) -> list[ExportRow]:
    return [
        ExportRow(id=r.id, global_key=r.global_key, width=r.width, height=r.height, coco_id=r.coco_id)
        for r in refs
    ]


def _xywh(cols: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([cols[k].astype(np.float64) for k in ("x", "y", "w", "h")], axis=1).reshape(-1, 4)


def export_annotations(session: Session, workspace_id: int, dataset_id: int, fmt: str) -> bytes:
    refs = repo.rows_of_dataset(session, dataset_id)
    cols = repo.annotations_of(session, [r.id for r in refs])
    data = ExportData(
        rows=_rows(refs),
        classes=_classes(session, workspace_id),
        boxes=ExportBoxes(
            row_id=cols["data_row_id"].astype(np.int64),
            class_id=cols["class_id"].astype(np.int64),
            xywh=_xywh(cols),
            iscrowd=cols["iscrowd"].astype(bool),
            area=cols["area"].astype(np.float64),
            box_id=cols["id"].astype(np.int64),
        ),
    )
    if fmt == "coco":
        return coco.write_gt(data)
    if fmt == "yolo":
        return yolo.write(data, predictions=False)
    if fmt == "voc":
        return voc.write(data)
    if fmt == "labelbox":
        return labelbox.write(data, predictions=False)
    raise BadRequest(f"format {fmt!r} cannot export ground truth; use coco, yolo, voc or labelbox")


def export_predictions(session: Session, workspace_id: int, run_id: int, fmt: str) -> bytes:
    refs = repo.rows_of_run(session, run_id)
    cols = repo.predictions_of(session, run_id)
    data = ExportData(
        rows=_rows(refs),
        classes=_classes(session, workspace_id),
        boxes=ExportBoxes(
            row_id=cols["data_row_id"].astype(np.int64),
            class_id=cols["class_id"].astype(np.int64),
            xywh=_xywh(cols),
            conf=cols["confidence"].astype(np.float64),
            box_id=cols["id"].astype(np.int64),
        ),
    )
    if fmt == "coco":
        return coco.write_results(data)
    if fmt == "yolo":
        return yolo.write(data, predictions=True)
    if fmt == "ultralytics":
        return ultralytics.write(data)
    if fmt == "labelbox":
        return labelbox.write(data, predictions=True)
    raise BadRequest(f"format {fmt!r} cannot export predictions; use coco, yolo, ultralytics or labelbox")
