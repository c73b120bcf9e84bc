"""YOLO txt: a zip with ``data.yaml`` (class names) and one ``<stem>.txt`` per image.

Lines are ``class cx cy w h`` (ground truth) or ``class cx cy w h conf`` (predictions), normalized to
[0, 1] by the image size. A label file ``.../labels/<sub>/<stem>.txt`` names the image ``<sub>/<stem>``
(any extension); an empty label file means "no boxes".
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import yaml

from services.ingest.domain import key_stem
from services.ingest.formats.base import (
    BoxTable,
    Category,
    ExportData,
    ImageRef,
    fail,
    open_zip,
    write_zip,
)
from shared.errors import BadRequest


def _names(doc: Any, source: str) -> list[str]:
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        try:
            ordered = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError):
            raise fail(source, "data.yaml names keys must be class indices") from None
        if [k for k, _ in ordered] != list(range(len(ordered))):
            raise fail(source, "data.yaml names must be indexed 0..n-1")
        return [v for _, v in ordered]
    if isinstance(names, list) and all(isinstance(n, str | int) for n in names):
        return [str(n) for n in names]
    raise fail(source, "data.yaml needs `names`: a list or an {index: name} map")


def label_stem(member: str) -> str:
    """``dataset/labels/train/a.txt`` -> ``train/a``; ``a.txt`` -> ``a``."""
    path = member[: -len(".txt")]
    parts = path.split("/")
    if "labels" in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index("labels", 1)
        parts = parts[last + 1 :]
    return "/".join(parts)


def parse(data: bytes, source: str, *, predictions: bool, max_bytes: int) -> BoxTable:
    zf = open_zip(data, source, max_bytes)
    members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    yamls = [m for m in members if m.filename.rsplit("/", 1)[-1] in ("data.yaml", "dataset.yaml")]
    if len(yamls) != 1:
        raise BadRequest(
            f"{source}: a YOLO archive needs exactly one data.yaml with the class names (found {len(yamls)})",
            context={"file": source},
        )
    yname = yamls[0].filename
    try:
        names = _names(yaml.safe_load(zf.read(yname)), f"{source}:{yname}")
    except yaml.YAMLError as exc:
        raise BadRequest(f"{source}:{yname}: malformed YAML ({exc})", context={"file": yname}) from None
    if len(set(names)) != len(names):
        raise fail(f"{source}:{yname}", "duplicate class names")

    refs: list[ImageRef] = []
    seen: dict[str, str] = {}
    file_of: list[int] = []
    line_of: list[int] = []
    rows: list[list[str]] = []
    labels = [m for m in members if m.filename.endswith(".txt")]
    file_names: list[str] = []
    for m in sorted(labels, key=lambda m: m.filename):
        stem = label_stem(m.filename)
        if stem in seen:
            raise fail(
                f"{source}:{m.filename}",
                f"duplicate label file for image {stem!r} (also {seen[stem]})",
                reason_code="duplicate_key",
            )
        seen[stem] = m.filename
        fi = len(refs)
        refs.append(ImageRef(stem=stem))
        file_names.append(m.filename)
        try:
            text = zf.read(m).decode("utf-8")
        except UnicodeDecodeError:
            raise fail(f"{source}:{m.filename}", "not UTF-8 text") from None
        for ln, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            rows.append(parts)
            file_of.append(fi)
            line_of.append(ln)
    files = np.asarray(file_of, dtype=np.int64)
    lines = np.asarray(line_of, dtype=np.int64)

    def where(i: int) -> str:
        return f"{source}:{file_names[int(files[i])]} line {int(lines[i])}"

    width_ok = (5, 6) if predictions else (5,)
    numbers = _numbers(rows, width_ok)
    if numbers is not None:
        cls, vals = numbers
    else:  # a line of another width or with a value that is not a number: name the first one
        cls, vals = _numbers_checked(rows, width_ok, predictions, where)
    bad = np.flatnonzero((cls < 0) | (cls >= len(names)))
    if bad.size:
        i = int(bad[0])
        raise fail(where(i), f"unknown class index {int(cls[i])} (data.yaml has {len(names)} names)")
    return BoxTable(
        source=source,
        images=refs,
        image_idx=files,
        classes=[("name", nm) for nm in names],
        class_idx=cls,
        xywh=vals[:, :4].copy(),
        conf=vals[:, 4].copy() if predictions else None,
        where=where,
        normalized=True,
        categories=[Category(name=nm, external_id=None) for nm in names],
    )


def _numbers(rows: list[list[str]], width_ok: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Class indices ``(n,)`` and ``(n, 5)`` values (conf 1.0 when absent) of lines that all have the
    same accepted width, converted in C with exactly ``int()``/``float()``; None when any line differs.
    """
    n = len(rows)
    widths = set(map(len, rows))
    if len(widths) > 1 or not widths <= set(width_ok):
        return None
    width = widths.pop() if widths else 5
    flat = list(chain.from_iterable(rows))
    try:
        cls = np.fromiter(map(int, flat[::width]), np.int64, count=n)
        given = np.fromiter(map(float, flat), np.float64, count=n * width).reshape(n, width)
    except (ValueError, OverflowError):
        return None
    vals = np.ones((n, 5), dtype=np.float64)
    vals[:, : width - 1] = given[:, 1:]
    return cls, vals


def _numbers_checked(
    rows: list[list[str]], width_ok: tuple[int, ...], predictions: bool, where: Callable[[int], str]
) -> tuple[np.ndarray, np.ndarray]:
    """As ``_numbers``, line by line, raising a 4xx that names the first bad line."""
    for i, parts in enumerate(rows):
        if len(parts) not in width_ok:
            want = "class cx cy w h [conf]" if predictions else "class cx cy w h"
            raise fail(where(i), f"expected `{want}`, got {len(parts)} values")
    n = len(rows)
    cls = np.empty(n, dtype=np.int64)
    vals = np.empty((n, 5), dtype=np.float64)
    vals[:, 4] = 1.0
    for i, parts in enumerate(rows):
        try:
            cls[i] = int(parts[0])
            vals[i, : len(parts) - 1] = [float(p) for p in parts[1:]]
        except (ValueError, OverflowError):
            raise fail(where(i), f"not numbers: {' '.join(parts)!r}"[:200]) from None
    return cls, vals


def _fmt(v: float) -> str:
    return repr(float(v))


def write(export: ExportData, *, predictions: bool) -> bytes:
    ordered = sorted(export.classes, key=lambda c: c.external_id)
    index = {c.id: i for i, c in enumerate(ordered)}
    files: dict[str, bytes] = {
        "data.yaml": yaml.safe_dump(
            {"names": {i: c.name for i, c in enumerate(ordered)}}, sort_keys=True
        ).encode()
    }
    b = export.boxes
    for row, idx in export.by_row():
        lines = []
        for i in idx:
            x, y, w, h = b.xywh[i]
            vals = [(x + w / 2) / row.width, (y + h / 2) / row.height, w / row.width, h / row.height]
            parts = [str(index[int(b.class_id[i])]), *(_fmt(v) for v in vals)]
            if predictions:
                parts.append(_fmt(b.conf[i] if b.conf is not None else 1.0))
            lines.append(" ".join(parts))
        files[f"labels/{key_stem(row.global_key)}.txt"] = (
            "\n".join(lines) + ("\n" if lines else "")
        ).encode()
    return write_zip(files)
