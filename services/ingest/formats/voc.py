"""Pascal VOC XML: one ``<annotation>`` per image (a single .xml or a zip of them).

Coordinates are read as pixel edges: ``x = xmin, w = xmax - xmin`` (written back the same way, so a
round trip is exact). ``<difficult>``/``<truncated>`` are read and ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import numpy as np

from services.ingest.domain import key_stem
from services.ingest.formats.base import (
    BoxTable,
    ExportData,
    ImageRef,
    factorize,
    fail,
    num,
    open_zip,
    write_zip,
)
from shared.errors import BadRequest


def _text(node: ET.Element | None, tag: str) -> str | None:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text else None


def parse(data: bytes, source: str, *, max_bytes: int) -> BoxTable:
    if data[:2] == b"PK":
        zf = open_zip(data, source, max_bytes)
        docs = [
            (f"{source}:{m.filename}", zf.read(m))
            for m in sorted(zf.infolist(), key=lambda m: m.filename)
            if m.filename.endswith(".xml") and not m.is_dir()
        ]
    else:
        docs = [(source, data)]
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadRequest(
            f"{source}: XML with DOCTYPE/ENTITY declarations is refused", context={"file": source}
        )
    refs: list[ImageRef] = []
    seen: dict[str, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    img_idx: list[int] = []
    names: list[str] = []
    boxes: list[list[float]] = []
    where_of: list[str] = []
    for fname, raw in docs:
        if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
            raise BadRequest(
                f"{fname}: XML with DOCTYPE/ENTITY declarations is refused", context={"file": fname}
            )
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as exc:
            raise BadRequest(f"{fname}: malformed XML ({exc})", context={"file": fname}) from None
        if root.tag != "annotation":
            raise fail(fname, f"root element must be <annotation>, got <{root.tag}>")
        filename = _text(root, "filename")
        if not filename:
            raise fail(fname, "missing <filename>")
        if filename in seen:
            raise fail(
                fname, f"duplicate image {filename!r} (also in {seen[filename]})", reason_code="duplicate_key"
            )
        seen[filename] = fname
        fi = len(refs)
        refs.append(ImageRef(key=filename))
        size = root.find("size")
        try:
            w, h = _text(size, "width"), _text(size, "height")
            if w and h:
                sizes[fi] = (int(float(w)), int(float(h)))
        except ValueError:
            raise fail(fname, "<size> width/height must be numbers") from None
        for k, obj in enumerate(root.findall("object")):
            where = f"{fname}: object[{k}]"
            name = _text(obj, "name")
            if not name:
                raise fail(where, "missing <name>")
            bb = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (
                    float(_text(bb, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax")
                )
            except ValueError:
                raise fail(where, "<bndbox> coordinates must be numbers") from None
            img_idx.append(fi)
            names.append(name)
            boxes.append([xmin, ymin, xmax - xmin, ymax - ymin])
            where_of.append(where)
    classes, class_idx = factorize(names)
    return BoxTable(
        source=source,
        images=refs,
        image_idx=np.asarray(img_idx, dtype=np.int64),
        classes=[("name", c) for c in classes],
        class_idx=class_idx,
        xywh=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        where=lambda i: where_of[i],
        image_sizes=sizes,
    )


def write(export: ExportData) -> bytes:
    name_of = {c.id: c.name for c in export.classes}
    b = export.boxes
    files: dict[str, bytes] = {}
    for row, idx in export.by_row():
        objs = []
        for i in idx:
            x, y, w, h = (float(v) for v in b.xywh[i])
            objs.append(
                "<object>"
                f"<name>{escape(name_of[int(b.class_id[i])])}</name><difficult>0</difficult>"
                f"<bndbox><xmin>{num(x)}</xmin><ymin>{num(y)}</ymin>"
                f"<xmax>{num(x + w)}</xmax><ymax>{num(y + h)}</ymax></bndbox>"
                "</object>"
            )
        xml = (
            f"<annotation><filename>{escape(row.global_key)}</filename>"
            f"<size><width>{row.width}</width><height>{row.height}</height><depth>3</depth></size>"
            f"{''.join(objs)}</annotation>"
        )
        files[f"Annotations/{key_stem(row.global_key)}.xml"] = xml.encode()
    return write_zip(files)
