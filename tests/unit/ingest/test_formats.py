"""Format parsers and writers without a database: shapes, conversions, and writer -> parser round trips."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import orjson
import pytest

from services.ingest.formats import coco, labelbox, ultralytics, voc, yolo
from services.ingest.formats.base import ExportBoxes, ExportClass, ExportData, ExportRow, ImageRef
from services.ingest.repository import binary_copy_payload
from shared.errors import BadRequest, InvalidInput

ROWS = [ExportRow(1, "a/x.jpg", 640, 480, 11), ExportRow(2, "b.png", 100, 50, None)]
CLASSES = [ExportClass(7, "person", 1), ExportClass(8, "car", 3)]
BOXES = ExportBoxes(
    row_id=np.array([1, 1, 2]),
    class_id=np.array([7, 8, 7]),
    xywh=np.array([[10.5, 20.25, 100.125, 200.0], [0.0, 0.0, 640.0, 480.0], [1.0, 2.0, 3.0, 4.0]]),
    conf=np.array([0.9, 0.25, 1.0]),
    iscrowd=np.array([False, True, False]),
    area=np.array([20025.0, 1234.5, 12.0]),
    box_id=np.array([101, 102, 103]),
)
DATA = ExportData(ROWS, CLASSES, BOXES)
SIZE = {1: (640, 480), 2: (100, 50)}


def _absolute(table: yolo.BoxTable, keys: list[str]) -> np.ndarray:
    """YOLO tables are normalized: scale back with the image size of each box."""
    stems = {k.rsplit(".", 1)[0]: SIZE[r.id] for k, r in zip(keys, ROWS, strict=True)}
    wh = np.array([stems[str(table.images[i].stem)] for i in table.image_idx], dtype=float)
    cx, cy, w, h = table.xywh.T
    return np.stack([(cx - w / 2) * wh[:, 0], (cy - h / 2) * wh[:, 1], w * wh[:, 0], h * wh[:, 1]], axis=1)


def test_coco_gt_round_trip_keeps_iscrowd_area_and_category_ids() -> None:
    table = coco.parse_gt(coco.write_gt(DATA), "gt.json")
    assert [r.key for r in table.images] == ["a/x.jpg", "b.png"]
    assert [r.coco_id for r in table.images] == [11, 2]  # COCO id when known, else the row id
    assert [c.external_id for c in table.categories] == [1, 3]
    np.testing.assert_array_equal(table.xywh, BOXES.xywh)
    assert table.iscrowd is not None and table.iscrowd.tolist() == [False, True, False]
    assert table.area is not None and table.area.tolist() == [20025.0, 1234.5, 12.0]


def test_coco_results_round_trip_keeps_scores() -> None:
    table = coco.parse_results(coco.write_results(DATA), "r.json")
    assert table.conf is not None and table.conf.tolist() == [0.9, 0.25, 1.0]
    assert [table.classes[i] for i in table.class_idx] == [("ext", 1), ("ext", 3), ("ext", 1)]
    np.testing.assert_array_equal(table.xywh, BOXES.xywh)


def test_coco_results_without_score_count_as_one() -> None:
    table = coco.parse_results(orjson.dumps([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4]}]), "r")
    assert table.conf is not None and table.conf.tolist() == [1.0]


@pytest.mark.parametrize("predictions", [False, True])
def test_yolo_round_trip(predictions: bool) -> None:
    data = yolo.write(DATA, predictions=predictions)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert set(names) == {"data.yaml", "labels/a/x.txt", "labels/b.txt"}
    table = yolo.parse(data, "y.zip", predictions=predictions, max_bytes=10**7)
    np.testing.assert_allclose(_absolute(table, [r.global_key for r in ROWS]), BOXES.xywh, atol=1e-9)
    assert [table.classes[i][1] for i in table.class_idx] == ["person", "car", "person"]
    if predictions:
        assert table.conf is not None and table.conf.tolist() == [0.9, 0.25, 1.0]


def test_yolo_label_paths() -> None:
    assert yolo.label_stem("ds/labels/train/a.txt") == "train/a"
    assert yolo.label_stem("a.txt") == "a"
    assert yolo.label_stem("labels/labels/x.txt") == "x"


def test_voc_round_trip() -> None:
    data = voc.write(DATA)
    table = voc.parse(data, "voc.zip", max_bytes=10**7)
    assert [r.key for r in table.images] == ["a/x.jpg", "b.png"]
    assert table.image_sizes == {0: (640, 480), 1: (100, 50)}
    np.testing.assert_allclose(table.xywh, BOXES.xywh, atol=1e-9)


def test_voc_refuses_entities() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><annotation><filename>&x;</filename></annotation>'
    with pytest.raises(BadRequest, match="DOCTYPE"):
        voc.parse(bomb, "bomb.xml", max_bytes=10**6)


@pytest.mark.parametrize("predictions", [False, True])
def test_labelbox_round_trip(predictions: bool) -> None:
    data = labelbox.write(DATA, predictions=predictions)
    lines = data.decode().splitlines()
    assert len(lines) == 3 and orjson.loads(lines[0])["dataRow"] == {"globalKey": "a/x.jpg"}
    table = labelbox.parse(data, "lb.ndjson", predictions=predictions)
    np.testing.assert_array_equal(table.xywh, BOXES.xywh)
    if predictions:
        assert table.conf is not None and table.conf.tolist() == [0.9, 0.25, 1.0]
    assert table.where(2) == "lb.ndjson line 3"


def test_labelbox_rejects_non_boxes() -> None:
    line = b'{"name": "p", "dataRow": {"globalKey": "a"}, "polygon": [{"x": 1, "y": 2}]}\n'
    with pytest.raises(InvalidInput, match="line 1: only bounding boxes are supported \\(got polygon\\)"):
        labelbox.parse(line, "lb.ndjson", predictions=True)


def test_ultralytics_round_trip() -> None:
    table = ultralytics.parse(ultralytics.write(DATA), "u.json")
    assert [r.key for r in table.images] == ["a/x.jpg", "b.png"]
    np.testing.assert_allclose(table.xywh, BOXES.xywh, atol=1e-9)
    assert table.conf is not None and table.conf.tolist() == [0.9, 0.25, 1.0]


def test_image_ref_text() -> None:
    assert str(ImageRef(key="a.jpg")) == "global key 'a.jpg'"
    assert str(ImageRef(coco_id=5)) == "image id 5"


def test_binary_copy_payload_layout() -> None:
    payload = binary_copy_payload(
        [
            (np.array([1, 2], dtype=np.int64), "int8"),
            (np.array([0.5, 2.0]), "float8"),
            (np.array([True, False]), "bool"),
        ]
    )
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00" and payload[-2:] == b"\xff\xff"
    body = payload[19:-2]
    first = struct.unpack(">hiqidib", body[: 2 + 12 + 12 + 5])
    assert first == (3, 8, 1, 8, 0.5, 1, 1)
    assert len(body) == 2 * (2 + 12 + 12 + 5)
