"""Ultralytics results JSON: what ``Results.summary()`` / ``Results.to_json()`` give per image.

The file maps each image to its list: either ``{"<global key>": [det, ...], ...}`` or
``[{"path"|"global_key": ..., "results": [det, ...]}, ...]``; a ``det`` is
``{"name", "class", "confidence", "box": {"x1", "y1", "x2", "y2"}}`` in pixels. The class is taken by
``name`` (else by ``class`` index = the class's external id).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import msgspec
import numpy as np
import orjson

from services.ingest.formats.base import (
    BoxTable,
    ExportData,
    ImageRef,
    decode_typed,
    factorize,
    fail,
    load_json,
    num,
)


class _Box(msgspec.Struct, gc=False):
    x1: float
    y1: float
    x2: float
    y2: float


class _Det(msgspec.Struct, gc=False):
    """One well-formed detection with a class name (by-index-only files take the checked path)."""

    name: str
    box: _Box
    confidence: float | None = 1.0


_BY_KEY = msgspec.json.Decoder(dict[str, list[_Det]])


def _parse_typed(data: bytes, source: str) -> BoxTable | None:
    """The table of a well-formed ``{global_key: [det, ...]}`` file, else None."""
    doc = decode_typed(_BY_KEY, data)
    if doc is None:
        return None
    keys = list(doc)
    counts = np.fromiter(map(len, doc.values()), np.int64, count=len(keys))
    dets = list(chain.from_iterable(doc.values()))
    n = len(dets)
    boxes = [d.box for d in dets]
    xyxy = np.fromiter(
        chain.from_iterable([(b.x1, b.y1, b.x2, b.y2) for b in boxes]), np.float64, count=4 * n
    )
    xyxy = xyxy.reshape(n, 4)
    confs = [d.confidence for d in dets]
    conf = np.asarray(confs, dtype=np.float64)  # null -> NaN -> 1.0 below
    if None in confs:
        conf[np.isnan(conf)] = 1.0
    classes, class_idx = factorize([("name", d.name) for d in dets])
    img = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts

    def where(i: int) -> str:
        k = int(img[i])
        return f"{source}: [{keys[k]!r}][{i - int(first[k])}]"

    return BoxTable(
        source=source,
        images=[ImageRef(key=k) for k in keys],
        image_idx=img,
        classes=classes,
        class_idx=class_idx,
        # x2 - x1 as in the checked path (the same float operation, so the same bits)
        xywh=np.stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1),
        conf=conf,
        where=where,
    )


def parse(data: bytes, source: str) -> BoxTable:
    table = _parse_typed(data, source)
    if table is not None:
        return table
    return parse_checked(data, source)


def parse_checked(data: bytes, source: str) -> BoxTable:
    """``parse`` entry by entry: reads any file it reads, and names what is wrong with the rest."""
    doc = load_json(data, source)
    entries: list[tuple[str, Any, str]] = []
    if isinstance(doc, dict):
        entries = [(k, v, f"{source}: [{k!r}]") for k, v in doc.items()]
    elif isinstance(doc, list):
        for i, e in enumerate(doc):
            where = f"{source}: [{i}]"
            if not isinstance(e, dict):
                raise fail(where, "an entry must be an object with path/global_key and results")
            key = e.get("global_key", e.get("path"))
            if not isinstance(key, str):
                raise fail(where, 'missing "global_key" (or "path")')
            entries.append((key, e.get("results", e.get("predictions")), where))
    else:
        raise fail(source, "Ultralytics results must be an object {global_key: [...]} or a list")
    keys: list[str] = []
    img: list[int] = []
    cls: list[Any] = []
    boxes: list[list[float]] = []
    confs: list[Any] = []
    where_of: list[str] = []
    seen: set[str] = set()
    for key, dets, where in entries:
        if key in seen:
            raise fail(where, f"duplicate image {key!r}", reason_code="duplicate_key")
        seen.add(key)
        if not isinstance(dets, list):
            raise fail(where, "the detections must be a list")
        fi = len(keys)
        keys.append(key)
        for j, d in enumerate(dets):
            w = f"{where}[{j}]"
            if not isinstance(d, dict) or not isinstance(d.get("box"), dict):
                raise fail(w, 'a detection needs "box": {x1, y1, x2, y2}')
            b = d["box"]
            try:
                x1, y1, x2, y2 = (b[k] for k in ("x1", "y1", "x2", "y2"))
            except KeyError as exc:
                raise fail(w, f"box is missing {exc.args[0]!r}") from None
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x1, y1, x2, y2)):
                raise fail(w, f"box values must be numbers, got {b!r}"[:200])
            if isinstance(d.get("name"), str):
                cls.append(("name", d["name"]))
            elif isinstance(d.get("class"), int):
                cls.append(("ext", d["class"]))
            else:
                raise fail(w, 'a detection needs a class "name" (or "class" index)')
            conf = d.get("confidence", 1.0)
            if conf is None:
                conf = 1.0
            if not isinstance(conf, int | float) or isinstance(conf, bool):
                raise fail(w, f"confidence must be a number, got {conf!r}")
            img.append(fi)
            boxes.append([x1, y1, x2 - x1, y2 - y1])
            confs.append(conf)
            where_of.append(w)
    classes, class_idx = factorize(cls)
    return BoxTable(
        source=source,
        images=[ImageRef(key=k) for k in keys],
        image_idx=np.asarray(img, dtype=np.int64),
        classes=classes,
        class_idx=class_idx,
        xywh=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        conf=np.asarray(confs, dtype=np.float64),
        where=lambda i: where_of[i],
    )


def write(export: ExportData) -> bytes:
    names = {c.id: (c.name, c.external_id) for c in export.classes}
    b = export.boxes
    out: dict[str, list[dict[str, Any]]] = {}
    for row, idx in export.by_row():
        dets = []
        for i in idx:
            x, y, w, h = (float(v) for v in b.xywh[i])
            name, ext = names[int(b.class_id[i])]
            dets.append(
                {
                    "name": name,
                    "class": ext,
                    "confidence": float(b.conf[i]) if b.conf is not None else 1.0,
                    "box": {"x1": num(x), "y1": num(y), "x2": num(x + w), "y2": num(y + h)},
                }
            )
        out[row.global_key] = dets
    return orjson.dumps(out)
