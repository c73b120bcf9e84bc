"""The one in-memory shape every format parses into and writes from (column arrays, not objects)."""

from __future__ import annotations

import gc
import io
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Annotated, Any, TypeVar

import msgspec
import numpy as np
import orjson

from shared.errors import BadRequest, InvalidInput


@dataclass(frozen=True)
class ImageRef:
    """How a file names an image. Resolution order: row_id, key, coco_id, stem (docs/ingest.md)."""

    key: str | None = None
    coco_id: int | str | None = None
    stem: str | None = None
    row_id: int | None = None

    def __str__(self) -> str:
        for label, value in (("data row", self.row_id), ("global key", self.key), ("image id", self.coco_id)):
            if value is not None:
                return f"{label} {value!r}"
        return f"label file stem {self.stem!r}"


# ("name", "person") or ("ext", 3): a class by name or by its external id (COCO category id).
ClassRef = tuple[str, str | int]


@dataclass(frozen=True)
class Category:
    name: str
    external_id: int | None


@dataclass
class BoxTable:
    """Boxes of one file, as columns. ``xywh`` is absolute pixels unless ``normalized`` (YOLO cx,cy,w,h)."""

    source: str
    images: list[ImageRef]
    image_idx: np.ndarray  # (n,) int64 into images
    classes: list[ClassRef]
    class_idx: np.ndarray  # (n,) int64 into classes
    xywh: np.ndarray  # (n, 4) float64
    where: Callable[[int], str]
    conf: np.ndarray | None = None  # (n,) float64, predictions only
    iscrowd: np.ndarray | None = None  # (n,) bool
    area: np.ndarray | None = None  # (n,) float64, NaN = w*h
    normalized: bool = False
    categories: list[Category] = field(default_factory=list)
    image_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.xywh)


@dataclass(frozen=True)
class ExportRow:
    id: int
    global_key: str
    width: int
    height: int
    coco_id: int | None


@dataclass(frozen=True)
class ExportClass:
    id: int
    name: str
    external_id: int


@dataclass
class ExportBoxes:
    """Boxes to write, sorted by row. Shapes: (n,) and xywh (n, 4)."""

    row_id: np.ndarray
    class_id: np.ndarray
    xywh: np.ndarray
    conf: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    area: np.ndarray | None = None
    box_id: np.ndarray | None = None


@dataclass
class ExportData:
    rows: list[ExportRow]
    classes: list[ExportClass]
    boxes: ExportBoxes

    def by_row(self) -> Iterator[tuple[ExportRow, np.ndarray]]:
        """Each row with the indices of its boxes."""
        order = np.argsort(self.boxes.row_id, kind="stable")
        sorted_ids = self.boxes.row_id[order]
        for row in self.rows:
            lo = np.searchsorted(sorted_ids, row.id, "left")
            hi = np.searchsorted(sorted_ids, row.id, "right")
            yield row, order[lo:hi]


def factorize(values: list[Any]) -> tuple[list[Any], np.ndarray]:
    """Unique values in first-seen order and each value's index into them."""
    if values and set(map(type, values)) == {int}:
        try:
            arr = np.asarray(values, dtype=np.int64)
        except OverflowError:
            pass
        else:
            uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            return [int(u) for u in uniq[order]], rank[inverse.reshape(-1)].astype(np.int64)
    index: dict[Any, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return list(index), np.asarray(codes, dtype=np.int64)


_gc_lock = threading.Lock()
_gc_pauses = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees everything).

    Parsing a file allocates several container objects per box (a dict, a list per bbox); each 700
    allocations trigger a collection that walks the young objects, and the older generations are walked
    again and again as they fill: about two thirds of the CPU of ``orjson.loads`` on a 300k-box COCO
    results file. The pause is process-wide, so it is counted: collection resumes when the last
    concurrent parse ends.
    """
    global _gc_pauses
    with _gc_lock:
        _gc_pauses += 1
        if _gc_pauses == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.enable()


T = TypeVar("T")

# JSON integers that fit numpy int64 (orjson reads larger ones as floats: those files take the checked path).
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


def decode_typed(decoder: msgspec.json.Decoder[T], data: bytes) -> T | None:
    """``data`` decoded into the typed shape of a well-formed file, or None when it is not exactly that.

    The fast path of every JSON format: msgspec builds the per-box records in C, type-checked (numbers
    are numbers, never bools or strings), about twice as fast as ``orjson.loads`` into dicts followed by
    the per-field checks. Any file it refuses goes through the format's checked parser, which reads the
    same files the same way and names the first problem, so error messages do not depend on this path.
    """
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def load_json(data: bytes, source: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"{source}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            context={"file": source, "line": exc.lineno, "reason": "malformed_json"},
        ) from None


def fail(where: str, reason: str, **context: Any) -> InvalidInput:
    return InvalidInput(f"{where}: {reason}", context={"where": where, "reason": reason, **context})


def to_float_matrix(rows: list[Any], width: int, where: Callable[[int], str], what: str) -> np.ndarray:
    """``rows`` as an (n, width) float64 array; names the first row that is not ``width`` numbers."""
    if not rows:
        return np.zeros((0, width))
    try:
        if set(map(len, rows)) == {width}:
            flat = np.fromiter(chain.from_iterable(rows), np.float64, count=len(rows) * width)
            return flat.reshape(len(rows), width)
    except (ValueError, TypeError):
        pass
    try:
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == width:
            return arr
    except (ValueError, TypeError):
        pass
    for i, r in enumerate(rows):
        ok = isinstance(r, list | tuple) and len(r) == width
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in r)
        if not ok:
            raise fail(where(i), f"{what} must be a list of {width} numbers, got {r!r}"[:300])
    raise fail(where(0), f"{what} could not be read")  # pragma: no cover


def to_float_vector(values: list[Any], where: Callable[[int], str], what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        for i, v in enumerate(values):
            if v is None or isinstance(v, bool) or not isinstance(v, int | float):
                raise fail(where(i), f"{what} must be a number, got {v!r}") from None
        raise


def open_zip(data: bytes, source: str, max_bytes: int) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"{source}: not a readable zip archive ({exc})", context={"file": source}) from None
    total = 0
    for info in zf.infolist():
        total += info.file_size
        if total > max_bytes:
            raise BadRequest(
                f"{source}: archive expands past {max_bytes} bytes (zip bomb guard)", context={"file": source}
            )
        name = info.filename
        if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
            raise InvalidInput(
                f"{source}: archive member {name!r} has path traversal", context={"file": name}
            )
    return zf


def write_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def num(v: float) -> float | int:
    """Floats that are whole print as ints (smaller files); the value is unchanged."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f
