"""Export a dataset's ground truth or a run's predictions in any import format (lossless round trip)."""

from __future__ import annotations

from collections.abc import Callable

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


Writer = Callable[[ExportData], bytes]

GT_WRITERS: dict[str, Writer] = {
    "coco": coco.write_gt,
    "yolo": lambda d: yolo.write(d, predictions=False),
    "voc": voc.write,
    "labelbox": lambda d: labelbox.write(d, predictions=False),
}
PREDICTION_WRITERS: dict[str, Writer] = {
    "coco": coco.write_results,
    "yolo": lambda d: yolo.write(d, predictions=True),
    "ultralytics": ultralytics.write,
    "labelbox": lambda d: labelbox.write(d, predictions=True),
}


def _writer(writers: dict[str, Writer], fmt: str, what: str) -> Writer:
    """The writer for ``fmt``, checked before anything is read."""
    if fmt not in writers:
        raise BadRequest(f"format {fmt!r} cannot export {what}; use {', '.join(writers)}")
    return writers[fmt]


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
    write = _writer(GT_WRITERS, fmt, "ground truth")
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
    return write(data)


def export_predictions(session: Session, workspace_id: int, run_id: int, fmt: str) -> bytes:
    write = _writer(PREDICTION_WRITERS, fmt, "predictions")
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
    return write(data)
