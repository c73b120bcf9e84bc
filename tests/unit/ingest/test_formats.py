"""Format parsers and writers without a database: shapes, conversions, and writer -> parser round trips."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import orjson
import pytest

from services.ingest.formats import coco, labelbox, ultralytics, voc, yolo
from services.ingest.formats.base import ExportBoxes, ExportClass, ExportData, ExportRow, ImageRef, num
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


# ---- typed fast paths read well-formed files exactly as the checked parsers do


def _tables_equal(a: yolo.BoxTable, b: yolo.BoxTable) -> None:
    assert a.images == b.images and a.classes == b.classes
    np.testing.assert_array_equal(a.image_idx, b.image_idx)
    np.testing.assert_array_equal(a.class_idx, b.class_idx)
    assert a.image_idx.dtype == b.image_idx.dtype == np.int64
    assert a.xywh.shape == b.xywh.shape and a.xywh.tobytes() == b.xywh.tobytes()  # bit for bit
    assert (a.conf is None) == (b.conf is None)
    if a.conf is not None and b.conf is not None:
        assert a.conf.tobytes() == b.conf.tobytes()
    assert [a.where(i) for i in range(len(a))] == [b.where(i) for i in range(len(b))]


def _messy_numbers(n: int, seed: int = 0) -> np.ndarray:
    """Floats with many digits, tiny and whole values (written as ints by ``num``), and -0.0."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0, 1000, size=(n, 4)) * rng.choice([1e-7, 1.0, 1e3], size=(n, 4))
    v[::7] = np.round(v[::7])
    v[3::11, 0] = -0.0
    return v


def test_coco_results_typed_path_matches_checked_parser() -> None:
    v = _messy_numbers(200)
    doc: list[dict[str, object]] = []
    for i, (x, y, w, h) in enumerate(v):
        d: dict[str, object] = {"image_id": [3, "a/b.jpg", 2**40, 7][i % 4], "category_id": i % 5 - 1}
        d["bbox"] = [num(x), num(y), num(w), num(h)]
        if i % 3 == 0:
            d["score"] = float(v[i, 0] / 1000)
        elif i % 3 == 1:
            d["score"] = None
        if i % 10 == 0:
            d["segmentation"] = [[1, 2, 3, 4]]
        doc.append(d)
    data = orjson.dumps(doc)
    assert coco.decode_typed(coco._RESULTS, data) is not None  # this file takes the typed path
    _tables_equal(coco.parse_results(data, "r.json"), coco.parse_results_checked(data, "r.json"))


@pytest.mark.parametrize(
    "doc",
    [
        [{"image_id": 1, "category_id": True, "bbox": [1, 2, 3, 4]}],  # bool is not an integer
        [{"image_id": 1, "category_id": 1, "bbox": ["1", 2, 3, 4]}],
        [{"image_id": 2**63, "category_id": 1, "bbox": [1, 2, 3, 4]}],
        {"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}]},
        [{"image_id": 1, "bbox": [1, 2, 3, 4]}],
    ],
)
def test_coco_results_off_the_typed_path_read_as_checked(doc: object) -> None:
    data = orjson.dumps(doc)
    assert coco.decode_typed(coco._RESULTS, data) is None
    try:
        expected = coco.parse_results_checked(data, "r.json")
    except InvalidInput as exc:
        with pytest.raises(InvalidInput, match=str(exc).replace("[", r"\[").replace("]", r"\]")):
            coco.parse_results(data, "r.json")
    else:
        _tables_equal(coco.parse_results(data, "r.json"), expected)


def test_labelbox_typed_path_matches_checked_parser() -> None:
    v = _messy_numbers(120, seed=1)
    lines = []
    for i, (x, y, w, h) in enumerate(v):
        obj: dict[str, object] = {
            "uuid": str(i),
            "name": ["person", "car", "dog"][i % 3],
            "dataRow": {"globalKey": f"img/{i % 17}.jpg"},
            "bbox": {"top": num(y), "left": num(x), "height": num(h), "width": num(w)},
        }
        if i % 4:
            obj["confidence"] = None if i % 4 == 1 else float(v[i, 0] / 1000)
        lines.append(orjson.dumps(obj))
        if i % 9 == 0:
            lines.append(b"   ")
    data = b"\n".join(lines) + b"\n"
    for predictions in (False, True):
        fast = labelbox._parse_typed(data, "lb.ndjson", predictions=predictions)
        assert fast is not None
        _tables_equal(fast, labelbox.parse_checked(data, "lb.ndjson", predictions=predictions))


def test_labelbox_lines_off_the_typed_path_keep_their_message() -> None:
    good = b'{"name": "p", "dataRow": {"globalKey": "a"}, "bbox": {"top": 1, "left": 2, "height": 3, "width": 4}}'
    bad = b'{"name": "p", "dataRow": {"globalKey": "a"}, "bbox": {"top": 1, "left": 2, "height": 3, "width": true}}'
    with pytest.raises(InvalidInput, match="line 2: bbox values must be numbers"):
        labelbox.parse(good + b"\n" + bad, "lb.ndjson", predictions=True)
    by_id = b'{"name": "p", "dataRow": {"id": 5}, "bbox": {"top": 1, "left": 2, "height": 3, "width": 4}}'
    table = labelbox.parse(good + b"\n" + by_id, "lb.ndjson", predictions=True)
    assert table.images == [ImageRef(key="a"), ImageRef(row_id=5)]


def test_ultralytics_typed_path_matches_checked_parser() -> None:
    v = _messy_numbers(90, seed=2)
    doc: dict[str, list[dict[str, object]]] = {"empty.jpg": []}
    for i, (x, y, w, h) in enumerate(v):
        det: dict[str, object] = {
            "name": ["person", "car"][i % 2],
            "class": i % 2,
            "box": {"x1": num(x), "y1": num(y), "x2": num(x + w), "y2": num(y + h)},
        }
        if i % 3:
            det["confidence"] = None if i % 3 == 1 else float(v[i, 1] / 1000)
        doc.setdefault(f"k/{i % 13}.png", []).append(det)
    data = orjson.dumps(doc)
    fast = ultralytics._parse_typed(data, "u.json")
    assert fast is not None
    _tables_equal(fast, ultralytics.parse_checked(data, "u.json"))


@pytest.mark.parametrize("predictions", [False, True])
def test_yolo_vectorized_numbers_match_line_by_line(predictions: bool) -> None:
    v = _messy_numbers(50, seed=3) / 1000
    width = 6 if predictions else 5
    rows = [
        [str(i % 4)] + [repr(float(t)) for t in r] + (["0.5"] if predictions else []) for i, r in enumerate(v)
    ]
    rows[4][1] = "1_0.5"  # float() reads it: so do both paths
    rows[5][0] = "+1"
    fast = yolo._numbers(rows, (5, 6) if predictions else (5,))
    assert fast is not None

    def where(i: int) -> str:
        return f"line {i}"

    slow = yolo._numbers_checked(rows, (5, 6) if predictions else (5,), predictions, where)
    assert fast[0].tolist() == slow[0].tolist() and fast[1].tobytes() == slow[1].tobytes()
    assert len(rows[0]) == width
    rows[7][0] = "1.0"  # int() refuses it: the line-by-line path names it
    assert yolo._numbers(rows, (5, 6)) is None
    with pytest.raises(InvalidInput, match="line 7: not numbers"):
        yolo._numbers_checked(rows, (5, 6), predictions, where)
