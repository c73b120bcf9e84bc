"""COCO detection JSON (ground truth, with ``iscrowd`` and ``area``) and COCO results JSON (predictions)."""

from __future__ import annotations

from itertools import chain
from typing import Any

import msgspec
import numpy as np
import orjson

from services.ingest.formats.base import (
    BoxTable,
    Category,
    ExportData,
    ImageRef,
    Int64,
    decode_typed,
    factorize,
    fail,
    load_json,
    num,
    to_float_matrix,
    to_float_vector,
)


def _list(doc: dict[str, Any], key: str, source: str, required: bool = True) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise fail(source, f'"{key}" must be a list')
    return value


def parse_gt(data: bytes, source: str) -> BoxTable:
    doc = load_json(data, source)
    if not isinstance(doc, dict):
        raise fail(source, "a COCO file is a JSON object with images, annotations and categories")
    images = _list(doc, "images", source)
    anns = _list(doc, "annotations", source)
    cats = _list(doc, "categories", source)

    categories: list[Category] = []
    cat_name: dict[Any, str] = {}
    for i, c in enumerate(cats):
        loc = f"{source}: categories[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("id"), int):
            raise fail(loc, "a category needs an integer id and a name")
        if c["id"] in cat_name:
            raise fail(loc, f"duplicate category id {c['id']}")
        if c["name"] in cat_name.values():
            raise fail(loc, f"duplicate category name {c['name']!r}")
        cat_name[c["id"]] = c["name"]
        categories.append(Category(name=c["name"], external_id=c["id"]))

    refs: list[ImageRef] = []
    image_index: dict[Any, int] = {}
    seen_names: set[str] = set()
    sizes: dict[int, tuple[int, int]] = {}
    for i, im in enumerate(images):
        loc = f"{source}: images[{i}]"
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or "id" not in im:
            raise fail(loc, "an image needs an id and a file_name")
        if im["id"] in image_index:
            raise fail(loc, f"duplicate image id {im['id']!r}", reason_code="duplicate_key")
        if im["file_name"] in seen_names:
            raise fail(loc, f"duplicate file_name {im['file_name']!r}", reason_code="duplicate_key")
        seen_names.add(im["file_name"])
        image_index[im["id"]] = len(refs)
        if isinstance(im.get("width"), int) and isinstance(im.get("height"), int):
            sizes[len(refs)] = (im["width"], im["height"])
        refs.append(ImageRef(key=im["file_name"], coco_id=im["id"]))

    def where(i: int) -> str:
        return f"{source}: annotations[{i}]"

    img_idx = np.empty(len(anns), dtype=np.int64)
    cls_names: list[str] = []
    bboxes: list[Any] = []
    crowd = np.zeros(len(anns), dtype=bool)
    area = np.full(len(anns), np.nan)
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise fail(where(i), "an annotation must be an object")
        try:
            img_idx[i] = image_index[a.get("image_id")]
        except (KeyError, TypeError):
            raise fail(where(i), f"image_id {a.get('image_id')!r} is not in images") from None
        name = cat_name.get(a.get("category_id"))
        if name is None:
            raise fail(where(i), f"unknown category_id {a.get('category_id')!r} (not in categories)")
        cls_names.append(name)
        bboxes.append(a.get("bbox"))
        ic = a.get("iscrowd", 0)
        if ic not in (0, 1, True, False):
            raise fail(where(i), f"iscrowd must be 0 or 1, got {ic!r}")
        crowd[i] = bool(ic)
        if "area" in a:
            ar = a["area"]
            if not isinstance(ar, int | float) or isinstance(ar, bool):
                raise fail(where(i), f"area must be a number, got {ar!r}")
            area[i] = ar
    xywh = to_float_matrix(bboxes, 4, where, "bbox")
    classes, class_idx = factorize(cls_names)
    return BoxTable(
        source=source,
        images=refs,
        image_idx=img_idx,
        classes=[("name", c) for c in classes],
        class_idx=class_idx,
        xywh=xywh,
        where=where,
        iscrowd=crowd,
        area=area,
        categories=categories,
        image_sizes=sizes,
    )


class _Result(msgspec.Struct, gc=False):
    """One well-formed COCO result (other fields, e.g. ``segmentation``, are skipped)."""

    image_id: Int64 | str
    category_id: Int64
    bbox: tuple[float, float, float, float]
    score: float | None = 1.0


_RESULTS = msgspec.json.Decoder(list[_Result])


def _results_table(results: list[_Result], source: str) -> BoxTable:
    def where(i: int) -> str:
        return f"{source}: [{i}]"

    n = len(results)
    images, img_idx = factorize([r.image_id for r in results])
    classes, class_idx = factorize([r.category_id for r in results])
    xywh = np.fromiter(chain.from_iterable([r.bbox for r in results]), np.float64, count=4 * n)
    scores = [r.score for r in results]
    conf = np.asarray(scores, dtype=np.float64)  # null -> NaN -> 1.0 below
    if None in scores:
        conf[np.isnan(conf)] = 1.0
    return BoxTable(
        source=source,
        images=[ImageRef(coco_id=v) for v in images],
        image_idx=img_idx,
        classes=[("ext", c) for c in classes],
        class_idx=class_idx,
        xywh=xywh.reshape(n, 4),
        conf=conf,
        where=where,
    )


def parse_results(data: bytes, source: str) -> BoxTable:
    """A COCO results list: ``[{"image_id", "category_id", "bbox": [x,y,w,h], "score"}]``."""
    results = decode_typed(_RESULTS, data)
    if results is not None:
        return _results_table(results, source)
    return parse_results_checked(data, source)


def parse_results_checked(data: bytes, source: str) -> BoxTable:
    """``parse_results`` field by field: reads any file it reads, and names what is wrong with the rest."""
    doc = load_json(data, source)
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise fail(source, "COCO results must be a JSON list of {image_id, category_id, bbox, score}")

    def where(i: int) -> str:
        return f"{source}: [{i}]"

    try:
        image_ids = [d["image_id"] for d in doc]
        cat_ids = [d["category_id"] for d in doc]
        bboxes = [d["bbox"] for d in doc]
        scores = [d.get("score", 1.0) for d in doc]
    except (KeyError, TypeError, AttributeError):
        for i, d in enumerate(doc):
            if not isinstance(d, dict):
                raise fail(where(i), "a result must be an object") from None
            for k in ("image_id", "category_id", "bbox"):
                if k not in d:
                    raise fail(where(i), f'missing "{k}"') from None
        raise
    if not all(type(v) is int for v in cat_ids):
        for i, v in enumerate(cat_ids):
            if not isinstance(v, int) or isinstance(v, bool):
                raise fail(where(i), f"category_id must be an integer, got {v!r}")
    xywh = to_float_matrix(bboxes, 4, where, "bbox")
    try:
        conf = np.asarray(scores, dtype=np.float64)
        missing = np.flatnonzero(np.isnan(conf))
        conf[[i for i in missing if scores[i] is None]] = 1.0  # "score": null counts as 1.0 too
    except (ValueError, TypeError):
        conf = to_float_vector(scores, where, "score")
    try:
        images, img_idx = factorize(image_ids)
    except TypeError:
        i = next(i for i, v in enumerate(image_ids) if not isinstance(v, int | str))
        raise fail(where(i), f"image_id must be an integer or a string, got {image_ids[i]!r}") from None
    classes, class_idx = factorize(cat_ids)
    return BoxTable(
        source=source,
        images=[ImageRef(coco_id=v) for v in images],
        image_idx=img_idx,
        classes=[("ext", c) for c in classes],
        class_idx=class_idx,
        xywh=xywh,
        conf=conf,
        where=where,
    )


def _image_id(row_id: int, coco_id: int | None) -> int:
    return coco_id if coco_id is not None else row_id


def write_gt(export: ExportData) -> bytes:
    ext = {c.id: c.external_id for c in export.classes}
    b = export.boxes
    images = [
        {"id": _image_id(r.id, r.coco_id), "file_name": r.global_key, "width": r.width, "height": r.height}
        for r in export.rows
    ]
    image_of = {r.id: _image_id(r.id, r.coco_id) for r in export.rows}
    anns = []
    for i in range(len(b.row_id)):
        x, y, w, h = (num(v) for v in b.xywh[i])
        anns.append(
            {
                "id": int(b.box_id[i]) if b.box_id is not None else i + 1,
                "image_id": image_of[int(b.row_id[i])],
                "category_id": ext[int(b.class_id[i])],
                "bbox": [x, y, w, h],
                "area": num(b.area[i]) if b.area is not None else num(w * h),
                "iscrowd": int(b.iscrowd[i]) if b.iscrowd is not None else 0,
            }
        )
    cats = [{"id": c.external_id, "name": c.name, "supercategory": ""} for c in export.classes]
    return orjson.dumps({"images": images, "annotations": anns, "categories": cats})


def write_results(export: ExportData) -> bytes:
    ext = {c.id: c.external_id for c in export.classes}
    image_of = {r.id: _image_id(r.id, r.coco_id) for r in export.rows}
    b = export.boxes
    out = [
        {
            "image_id": image_of[int(b.row_id[i])],
            "category_id": ext[int(b.class_id[i])],
            "bbox": [num(v) for v in b.xywh[i]],
            "score": float(b.conf[i]) if b.conf is not None else 1.0,
        }
        for i in range(len(b.row_id))
    ]
    return orjson.dumps(out)
