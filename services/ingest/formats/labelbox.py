"""Labelbox NDJSON bounding boxes (ground truth imports and model-run predictions).

One object a line: ``{"uuid", "name", "dataRow": {"globalKey": ...} | {"id": ...},
"bbox": {"top", "left", "height", "width"}, "confidence"?}``. A prediction without ``confidence``
counts as 1.0, as in Labelbox.
"""

from __future__ import annotations

import uuid
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
    num,
)
from shared.errors import BadRequest

_NS = uuid.UUID("6f1c4cde-7a51-4d0e-9b25-8f8f6c9d3a10")


class _DataRow(msgspec.Struct, gc=False):
    globalKey: str  # Labelbox field names


class _Box(msgspec.Struct, gc=False):
    top: float
    left: float
    height: float
    width: float


class _Line(msgspec.Struct, gc=False):
    """One well-formed box line naming its row by global key (other lines take the checked path)."""

    name: str
    dataRow: _DataRow
    bbox: _Box
    confidence: float | None = 1.0


_LINE = msgspec.json.Decoder(_Line)


def _parse_typed(data: bytes, source: str, *, predictions: bool) -> BoxTable | None:
    """The table of a file whose every non-blank line is a ``_Line`` with a class name, else None."""
    lines: list[_Line] = []
    line_of: list[int] = []
    for ln, raw in enumerate(data.splitlines(), start=1):
        if raw.strip():
            line = decode_typed(_LINE, raw)
            if line is None or not line.name:
                return None
            lines.append(line)
            line_of.append(ln)
    n = len(lines)
    images, img_idx = factorize([ln.dataRow.globalKey for ln in lines])
    classes, class_idx = factorize([ln.name for ln in lines])
    boxes = [ln.bbox for ln in lines]
    xywh = np.fromiter(
        chain.from_iterable([(b.left, b.top, b.width, b.height) for b in boxes]), np.float64, count=4 * n
    )
    conf = None
    if predictions:
        confs = [ln.confidence for ln in lines]
        conf = np.asarray(confs, dtype=np.float64)  # null -> NaN -> 1.0 below
        if None in confs:
            conf[np.isnan(conf)] = 1.0

    def where(i: int) -> str:
        return f"{source} line {line_of[i]}"

    return BoxTable(
        source=source,
        images=[ImageRef(key=k) for k in images],
        image_idx=img_idx,
        classes=[("name", c) for c in classes],
        class_idx=class_idx,
        xywh=xywh.reshape(n, 4),
        conf=conf,
        where=where,
    )


def parse(data: bytes, source: str, *, predictions: bool) -> BoxTable:
    table = _parse_typed(data, source, predictions=predictions)
    if table is not None:
        return table
    return parse_checked(data, source, predictions=predictions)


def parse_checked(data: bytes, source: str, *, predictions: bool) -> BoxTable:
    """``parse`` line by line: reads any file it reads, and names what is wrong with the rest."""
    refs: list[Any] = []
    names: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    confs: list[Any] = []
    line_of: list[int] = []
    for ln, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{source} line {ln}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(
                f"{where}: malformed JSON ({exc.msg})", context={"file": source, "line": ln}
            ) from None
        if not isinstance(obj, dict):
            raise fail(where, "each line must be a JSON object")
        dr = obj.get("dataRow")
        if not isinstance(dr, dict) or not (isinstance(dr.get("globalKey"), str) or "id" in dr):
            raise fail(where, 'missing "dataRow": {"globalKey": ...} or {"id": ...}')
        if isinstance(dr.get("globalKey"), str):
            refs.append(("key", dr["globalKey"]))
        else:
            try:
                refs.append(("id", int(dr["id"])))
            except (TypeError, ValueError):
                raise fail(where, f"dataRow.id must be a Blindspot data row id, got {dr['id']!r}") from None
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise fail(where, 'missing class "name"')
        bb = obj.get("bbox")
        if not isinstance(bb, dict):
            kind = next((k for k in ("polygon", "mask", "point", "line", "answer") if k in obj), None)
            raise fail(where, f"only bounding boxes are supported (got {kind or 'no bbox'})")
        try:
            vals = tuple(bb[k] for k in ("left", "top", "width", "height"))
        except KeyError as exc:
            raise fail(where, f"bbox is missing {exc.args[0]!r}") from None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            raise fail(where, f"bbox values must be numbers, got {bb!r}"[:200])
        conf = obj.get("confidence", 1.0)
        if conf is None:
            conf = 1.0
        if not isinstance(conf, int | float) or isinstance(conf, bool):
            raise fail(where, f"confidence must be a number, got {conf!r}")
        names.append(name)
        boxes.append(vals)  # type: ignore[arg-type]
        confs.append(conf)
        line_of.append(ln)
    images, img_idx = factorize(refs)
    classes, class_idx = factorize(names)

    def where_fn(i: int) -> str:
        return f"{source} line {line_of[i]}"

    return BoxTable(
        source=source,
        images=[ImageRef(key=v) if k == "key" else ImageRef(row_id=v) for k, v in images],
        image_idx=img_idx,
        classes=[("name", c) for c in classes],
        class_idx=class_idx,
        xywh=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        conf=np.asarray(confs, dtype=np.float64) if predictions else None,
        where=where_fn,
    )


def write(export: ExportData, *, predictions: bool) -> bytes:
    name_of = {c.id: c.name for c in export.classes}
    key_of = {r.id: r.global_key for r in export.rows}
    b = export.boxes
    out = bytearray()
    for i in range(len(b.row_id)):
        x, y, w, h = (num(v) for v in b.xywh[i])
        box_id = int(b.box_id[i]) if b.box_id is not None else i
        obj: dict[str, Any] = {
            "uuid": str(uuid.uuid5(_NS, f"{'p' if predictions else 'a'}{box_id}")),
            "name": name_of[int(b.class_id[i])],
            "dataRow": {"globalKey": key_of[int(b.row_id[i])]},
            "bbox": {"top": y, "left": x, "height": h, "width": w},
        }
        if predictions:
            obj["confidence"] = float(b.conf[i]) if b.conf is not None else 1.0
        out += orjson.dumps(obj)
        out += b"\n"
    return bytes(out)
