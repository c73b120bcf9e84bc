"""Search rules with no I/O: preprocessing, point ids, payloads, filters, ranking, cursors, projections."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from services.search.schemas import RowFilter
from shared.adapters.vectors import Cond, Hit, IndexKind, VectorFilter
from shared.errors import BadRequest, InvalidInput

DIM = 1280
SIZE = 224
MEAN, STD = 127.0, 128.0  # EfficientNet-Lite preprocessing (deploy/triton/models/efficientnet_lite0)
OBJECT_NAMESPACE = uuid.UUID("6f1d3c1e-3b0a-4e51-9a59-0b1e5d0c9a11")

IMAGE_INDEXES: dict[str, IndexKind] = {
    "workspace_id": "integer",
    "dataset_id": "integer",
    "labeled": "integer",
    "classes": "keyword",
    "runs": "integer",
    "splits": "keyword",
    "errors": "keyword",
}
OBJECT_INDEXES: dict[str, IndexKind] = {
    "workspace_id": "integer",
    "dataset_id": "integer",
    "data_row_id": "integer",
    "labeled": "integer",
    "model_run_id": "integer",
    "kind": "keyword",
    "class": "keyword",
    "status": "keyword",
    "error_type": "keyword",
    "split": "keyword",
}


# ---------------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------------


def decode(data: bytes) -> Image.Image:
    """Bytes to an RGB image, EXIF orientation applied. Raises InvalidInput on undecodable bytes."""
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        img = ImageOps.exif_transpose(img) or img
        return img.convert("RGB")
    except Exception as exc:
        raise InvalidInput(f"image cannot be decoded: {exc}") from exc


def to_tensor(img: Image.Image) -> np.ndarray:
    """RGB image to the model input: float32 [3, 224, 224], resized (bilinear), ``(p - 127) / 128``."""
    a = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    return ((a - MEAN) / STD).transpose(2, 0, 1).copy()


def crop_box(
    img: Image.Image, box: tuple[float, float, float, float], *, context: float, min_px: int
) -> Image.Image | None:
    """The crop of an ``xywh`` box grown by ``context`` of its size per side, clipped to the image.

    None when the box (before growth) is under ``min_px`` wide or high, or lies outside the image.
    """
    x, y, w, h = box
    if w < min_px or h < min_px:
        return None
    x0, y0 = max(0.0, x - context * w), max(0.0, y - context * h)
    x1, y1 = min(float(img.width), x + w + context * w), min(float(img.height), y + h + context * h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return img.crop((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))


# ---------------------------------------------------------------------------------------------------
# Point ids and payloads
# ---------------------------------------------------------------------------------------------------


def object_point_id(model_run_id: int, kind: str, object_id: int) -> str:
    """Deterministic point id of an object in a run (re-embedding replaces, never duplicates)."""
    return str(uuid.uuid5(OBJECT_NAMESPACE, f"{model_run_id}:{kind}:{object_id}"))


def _meta_value(v: Any) -> str | int | None:
    """Metadata as it is stored in a payload: str/int kept, bools as "true"/"false" (Edge cannot match
    bools), others (floats, lists, objects) left out of the payload (SQL still filters them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | str):
        return v
    return None


def payload_meta(metadata: Mapping[str, Any]) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for k, v in metadata.items():
        pv = _meta_value(v)
        if pv is not None and "." not in k:
            out[k] = pv
    return out


@dataclass
class RowFacts:
    """What the image payload says about a row (read from Postgres, the source of truth)."""

    data_row_id: int
    workspace_id: int
    dataset_id: int
    labeled: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    classes: set[str] = field(default_factory=set)
    runs: set[int] = field(default_factory=set)
    splits: set[str] = field(default_factory=set)  # "<run>:<split>"
    errors: set[str] = field(default_factory=set)  # "<run>:<error type>"


def image_payload(f: RowFacts) -> dict[str, Any]:
    return {
        "workspace_id": f.workspace_id,
        "dataset_id": f.dataset_id,
        "data_row_id": f.data_row_id,
        "labeled": int(f.labeled),
        "classes": sorted(f.classes),
        "runs": sorted(f.runs),
        "splits": sorted(f.splits),
        "errors": sorted(f.errors),
        "meta": payload_meta(f.metadata),
    }


@dataclass(frozen=True)
class ObjectFacts:
    model_run_id: int
    kind: str
    object_id: int
    data_row_id: int
    class_name: str
    box: tuple[float, float, float, float]
    status: str | None
    error_type: str | None


def object_payload(o: ObjectFacts, row: RowFacts) -> dict[str, Any]:
    split = next((s.split(":", 1)[1] for s in row.splits if s.startswith(f"{o.model_run_id}:")), "unassigned")
    return {
        "workspace_id": row.workspace_id,
        "dataset_id": row.dataset_id,
        "data_row_id": o.data_row_id,
        "labeled": int(row.labeled),
        "model_run_id": o.model_run_id,
        "kind": o.kind,
        "object_id": o.object_id,
        "class": o.class_name,
        "status": o.status or "none",
        "error_type": o.error_type or "none",
        "split": split,
        "meta": payload_meta(row.metadata),
    }


# ---------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------


def vector_filter(f: RowFilter, *, target: str, dataset_id: int | None = None) -> VectorFilter:
    """The Qdrant payload filter of a row filter, for the image or the object collection.

    The workspace condition is added by the adapter on every call; it is not the caller's to forget.
    """
    must: list[Cond] = []
    if f.annotation is not None:
        must.append(Cond("labeled", (1 if f.annotation == "any" else 0,)))
    datasets = set(f.dataset_ids or [])
    if dataset_id is not None:
        datasets = datasets & {dataset_id} if f.dataset_ids else {dataset_id}
        if not datasets:
            datasets = {-1}  # the slice's dataset is outside the filter's: nothing matches
    if datasets:
        must.append(Cond("dataset_id", tuple(sorted(datasets))))
    run = f.model_run_id
    if target == "images":
        if run is not None:
            must.append(Cond("runs", (run,)))
        if f.splits:
            must.append(Cond("splits", tuple(f"{run}:{s.value}" for s in f.splits)))
        if f.error_types:
            must.append(Cond("errors", tuple(f"{run}:{e.value}" for e in f.error_types)))
        if f.class_names:
            must.append(Cond("classes", tuple(f.class_names)))
    else:
        if run is not None:
            must.append(Cond("model_run_id", (run,)))
        if f.splits:
            must.append(Cond("split", tuple(s.value for s in f.splits)))
        if f.error_types:
            must.append(Cond("error_type", tuple(e.value for e in f.error_types)))
        if f.class_names:
            must.append(Cond("class", tuple(f.class_names)))
    for k, v in (f.metadata or {}).items():
        pv = _meta_value(v)
        if pv is not None and "." not in k:
            must.append(Cond(f"meta.{k}", (pv,)))
    return VectorFilter(must=tuple(must))


# ---------------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    data_row_id: int
    score: float
    object: dict[str, Any] | None = None


def merge_best(
    hit_lists: Iterable[Sequence[Hit]], *, exclude: set[int] | None = None, per_object: bool = False
) -> list[Ranked]:
    """Union of several anchors' hit lists, best score per data row, sorted by (score desc, row id).

    With ``k`` = offset + limit hits per anchor, the first ``k`` merged rows are exact: a row in the
    true merged top-k got its best score from some anchor, in whose list fewer than k rows beat it.
    """
    exclude = exclude or set()
    best: dict[int, Ranked] = {}
    for hits in hit_lists:
        for h in hits:
            row = int(h.payload["data_row_id"])
            if row in exclude:
                continue
            cur = best.get(row)
            if cur is None or h.score > cur.score:
                obj = None
                if per_object:
                    obj = {k: h.payload[k] for k in ("model_run_id", "kind", "object_id")}
                best[row] = Ranked(row, h.score, obj)
    return sorted(best.values(), key=lambda r: (-r.score, r.data_row_id))


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of unit vectors [n, d] -> [1, d]."""
    m = vectors.mean(axis=0, keepdims=True)
    n = float(np.linalg.norm(m))
    if n < 1e-9:
        raise InvalidInput("the anchors' mean vector is zero; use combine='any'")
    return (m / n).astype(np.float32)


def max_similarity(rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Best cosine of each row [n, d] to any anchor [m, d] (unit vectors) -> [n]."""
    if len(rows) == 0 or len(anchors) == 0:
        return np.zeros(len(rows), dtype=np.float32)
    return np.asarray((rows @ anchors.T).max(axis=1), dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Cursors (opaque to clients)
# ---------------------------------------------------------------------------------------------------


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The offset/last id a cursor carries; 0 for no cursor. BadRequest on a malformed one."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, value = raw.split(":", 1)
        if tag != "v1":
            raise ValueError(tag)
        n = int(value)
        if n < 0:
            raise ValueError(n)
        return n
    except Exception:
        raise BadRequest("cursor is not one this service issued") from None


# ---------------------------------------------------------------------------------------------------
# Projections
# ---------------------------------------------------------------------------------------------------


def project_2d(vectors: np.ndarray, method: str, *, seed: int = 0) -> np.ndarray:
    """2-D coordinates [n, 2] of unit vectors [n, d]: PCA (SVD of the centred data) or UMAP (cosine).

    Fewer than 3 points: PCA (UMAP needs a neighbourhood). Coordinates are float64.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2))
    x = np.asarray(vectors, dtype=np.float64)
    if method == "pca" or n < 16:
        c = x - x.mean(axis=0, keepdims=True)
        if n == 1:
            return np.zeros((1, 2))
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        out = c @ vt[:2].T
        if out.shape[1] < 2:
            out = np.hstack([out, np.zeros((n, 2 - out.shape[1]))])
        return np.asarray(out)
    if method != "umap":
        raise InvalidInput(f"unknown projection method {method!r}")
    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(15, n - 1),
        metric="cosine",
        random_state=seed,
        low_memory=True,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)
