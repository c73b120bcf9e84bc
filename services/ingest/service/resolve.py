"""Match the images and classes a file names to data rows and classes (docs/ingest.md, "Matching")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cached_property

import numpy as np
from sqlalchemy.orm import Session

from services.ingest import repository as repo
from services.ingest.domain import basename_stem, key_stem
from services.ingest.formats.base import BoxTable, ClassRef, ImageRef
from shared.errors import InvalidInput


class RowIndex:
    """Candidate rows indexed every way a file may name them. Ambiguous names never match."""

    def __init__(self, rows: Iterable[repo.RowRef]) -> None:
        self.rows: dict[int, repo.RowRef] = {}
        for r in rows:
            self.rows[r.id] = r
        rs = list(self.rows.values())
        self.by_key = {r.global_key: r for r in rs}
        self.by_coco = {r.coco_id: r for r in rs if r.coco_id is not None}

    # The name-derived indexes are built on first use: a file naming images by key or COCO id never
    # needs them (a 5000-row dataset: a third of the matching time).
    @cached_property
    def by_stem(self) -> dict[str, repo.RowRef]:
        return self._unique((key_stem(r.global_key), r) for r in self.rows.values())

    @cached_property
    def by_base(self) -> dict[str, repo.RowRef]:
        return self._unique((r.global_key.rpartition("/")[2], r) for r in self.rows.values())

    @cached_property
    def by_base_stem(self) -> dict[str, repo.RowRef]:
        return self._unique((basename_stem(r.global_key), r) for r in self.rows.values())

    @staticmethod
    def _unique(pairs: Iterable[tuple[str, repo.RowRef]]) -> dict[str, repo.RowRef]:
        items = list(pairs)
        counts = Counter(k for k, _ in items)
        return {k: r for k, r in items if counts[k] == 1}

    def find(self, ref: ImageRef) -> repo.RowRef | None:
        if ref.row_id is not None:
            return self.rows.get(ref.row_id)
        if ref.key is not None:
            hit = self.by_key.get(ref.key) or self.by_base.get(ref.key.rpartition("/")[2])
            if hit is not None:
                return hit
        if ref.coco_id is not None:
            if isinstance(ref.coco_id, int) and ref.coco_id in self.by_coco:
                return self.by_coco[ref.coco_id]
            name = str(ref.coco_id)
            hit = self.by_key.get(name) or self.by_stem.get(name) or self.by_base_stem.get(name)
            if hit is not None:
                return hit
        if ref.stem is not None:
            return self.by_stem.get(ref.stem) or self.by_base_stem.get(ref.stem.rpartition("/")[2])
        return None


def resolve_rows(table: BoxTable, index: RowIndex) -> list[repo.RowRef]:
    """The row of each image the table names; 4xx on an unknown or doubly named image."""
    found: list[repo.RowRef] = []
    owner: dict[int, int] = {}
    first_box = _first_index(table.image_idx, len(table.images))
    for k, ref in enumerate(table.images):
        row = index.find(ref)
        where = table.where(first_box[k]) if first_box[k] >= 0 else table.source
        if row is None:
            raise InvalidInput(
                f"{where}: unknown image: no data row matches {ref}",
                context={"where": where, "reason": "unknown_global_key", "image": str(ref)},
            )
        if row.id in owner:
            other = table.images[owner[row.id]]
            raise InvalidInput(
                f"{where}: {ref} and {other} both name data row {row.global_key!r} (duplicate key in one import)",
                context={"where": where, "reason": "duplicate_key"},
            )
        owner[row.id] = k
        size = table.image_sizes.get(k)
        if size is not None and size != (row.width, row.height):
            raise InvalidInput(
                f"{where}: the file says {ref} is {size[0]}x{size[1]} but the stored image is "
                f"{row.width}x{row.height}",
                context={"where": where, "reason": "size_mismatch"},
            )
        found.append(row)
    return found


def _first_index(codes: np.ndarray, n: int) -> np.ndarray:
    first = np.full(n, -1, dtype=np.int64)
    if len(codes):
        uniq, idx = np.unique(codes, return_index=True)
        first[uniq] = idx
    return first


def resolve_classes(
    session: Session, workspace_id: int, table: BoxTable, *, create: bool
) -> tuple[np.ndarray, list[str]]:
    """Class id of each class the table names (``(k,)`` int64) and the names created.

    New names are created only when ``create`` (ground truth imports); a prediction naming a class
    that is not in the workspace is rejected.
    """
    classes = repo.list_classes(session, workspace_id)
    by_name = {c.name: c.id for c in classes}
    by_ext = {c.external_id: c.id for c in classes if c.external_id is not None}
    first_box = _first_index(table.class_idx, len(table.classes))

    def where(k: int) -> str:
        return table.where(int(first_box[k])) if first_box[k] >= 0 else table.source

    missing_names = [
        (k, ref) for k, ref in enumerate(table.classes) if ref[0] == "name" and ref[1] not in by_name
    ]
    if table.categories and create:
        missing_names += [
            (-1, ("name", c.name))
            for c in table.categories
            if c.name not in by_name and all(r[1] != c.name for _, r in missing_names)
        ]
    created: list[str] = []
    if missing_names:
        if not create:
            k, ref = next((k, r) for k, r in missing_names if k >= 0)
            raise InvalidInput(
                f"{where(k)}: unknown class name {ref[1]!r} (create it with POST /v1/classes first)",
                context={"where": where(k), "reason": "unknown_class", "class": ref[1]},
            )
        repo.lock_classes(session, workspace_id)
        classes = repo.list_classes(session, workspace_id)
        by_name = {c.name: c.id for c in classes}
        used = {c.external_id for c in classes if c.external_id is not None}
        wanted = {c.name: c.external_id for c in table.categories}
        new: list[tuple[str, int]] = []
        next_ext = max(used, default=-1) + 1
        for _, ref in missing_names:
            name = str(ref[1])
            if name in by_name or any(n == name for n, _ in new):
                continue
            ext = wanted.get(name)
            if ext is None or ext in used:
                ext = next_ext
            used.add(ext)
            next_ext = max(next_ext, ext + 1)
            new.append((name, ext))
        repo.insert_classes(session, workspace_id, new)
        created = [n for n, _ in new]
        classes = repo.list_classes(session, workspace_id)
        by_name = {c.name: c.id for c in classes}
        by_ext = {c.external_id: c.id for c in classes if c.external_id is not None}
    out = np.empty(len(table.classes), dtype=np.int64)
    for k, ref in enumerate(table.classes):
        kind, value = ref
        cid = by_name.get(str(value)) if kind == "name" else by_ext.get(value)  # type: ignore[arg-type]
        if cid is None:
            label = "class id" if kind == "ext" else "class name"
            raise InvalidInput(
                f"{where(k)}: unknown {label} {value!r}",
                context={"where": where(k), "reason": "unknown_class", "class": str(value)},
            )
        out[k] = cid
    return out, created


ClassRefs = list[ClassRef]
