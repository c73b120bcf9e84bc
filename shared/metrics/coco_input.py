"""COCO dicts -> flat numpy arrays, grouped by (category, image) the way pycocotools walks them.

``flatten_coco(gt, dets)`` reads a COCO ground-truth dict (``images``, ``annotations``,
``categories``) and a detection result list (``image_id``, ``category_id``, ``bbox``, ``score``) and
returns a ``FlatCoco``: detections and ground truth sorted by (category index, image index), the
detections of a group by descending score (stable), each with its permutation back to input order.

Which objects are evaluated (pycocotools ``COCOeval._prepare`` + ``COCO.loadRes``):
- images = every id in ``gt["images"]``; categories = every id in ``gt["categories"]`` (sorted).
- a GT annotation of an unknown image or category is skipped; a detection of an unknown category is
  skipped; a detection of an unknown image is an error (pycocotools asserts).
- GT ``area`` is the annotation's ``area`` (``w * h`` of its box when absent), ``iscrowd`` defaults to 0
  (pycocotools ignores the ``ignore`` key: it is overwritten by ``iscrowd``).
- a detection's area is ``w * h`` of its box (loadRes).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.errors import InvalidInput
from shared.metrics.coco_json import ResultColumns
from shared.metrics.coco_native import kernels

__all__ = ["CocoFormatError", "FlatCoco", "GtColumns", "flatten_coco", "flatten_columns", "gt_columns"]

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


class CocoFormatError(InvalidInput):
    """A COCO file that parsed but does not have the expected shape (names the field)."""


@dataclass(frozen=True)
class FlatCoco:
    """Sorted, grouped arrays. N = evaluated detections, M = evaluated GT, K categories, I images.

    image_ids ``(I,)``, category_ids ``(K,)`` ascending.
    det_* ``(N,)``/``(N, 4)``: box xywh, area, score, image/category index, rank in its group,
    det_input ``(N,)`` index in the input detection list.
    gt_* ``(M,)``/``(M, 4)``: box, area, crowd, id, image/category index, gt_input index in
    ``gt["annotations"]``.
    Groups ``(P,)``: one per (category, image) with a detection or a GT: group_cat, group_img,
    det_start/det_end, gt_start/gt_end. cat_det_start/cat_det_end ``(K,)``: a category's detections.
    n_det_input / n_gt_input: lengths of the input lists.
    """

    image_ids: I64
    category_ids: I64
    det_box: F64
    det_area: F64
    det_score: F64
    det_img: I64
    det_cat: I64
    det_rank: I64
    det_input: I64
    gt_box: F64
    gt_area: F64
    gt_crowd: NDArray[np.bool_]
    gt_id: I64
    gt_img: I64
    gt_cat: I64
    gt_input: I64
    group_cat: I64
    group_img: I64
    det_start: I64
    det_end: I64
    gt_start: I64
    gt_end: I64
    cat_det_start: I64
    cat_det_end: I64
    n_det_input: int
    n_gt_input: int


def _ids(items: Any, what: str) -> I64:
    if not isinstance(items, list):
        raise CocoFormatError(f"ground truth '{what}' must be a list")
    try:
        return np.array([int(it["id"]) for it in items], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise CocoFormatError(f"every entry of '{what}' needs an integer 'id'") from exc


def _boxes(rows: list[Any], what: str) -> F64:
    if not rows:
        return np.zeros((0, 4))
    try:
        arr = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CocoFormatError(f"every {what} 'bbox' must be 4 numbers [x, y, w, h]") from exc
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise CocoFormatError(f"every {what} 'bbox' must be 4 numbers [x, y, w, h]")
    return arr


def _column(items: list[dict[str, Any]], key: str, what: str, dtype: type) -> NDArray[Any]:
    try:
        return np.array(list(map(itemgetter(key), items)), dtype=dtype).reshape(len(items))
    except KeyError as exc:
        raise CocoFormatError(f"every {what} needs '{key}'") from exc
    except (TypeError, ValueError) as exc:
        raise CocoFormatError(f"{what} '{key}' must be a number") from exc


def _index_of(sorted_ids: I64, values: I64) -> tuple[I64, NDArray[np.bool_]]:
    """Position of each value in ``sorted_ids`` and whether it is there."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    lo, hi = int(sorted_ids[0]), int(sorted_ids[-1])
    if hi - lo <= 4 * len(sorted_ids) + 1024:  # dense ids: a lookup table
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[sorted_ids - lo] = np.arange(len(sorted_ids))
        inside = (values >= lo) & (values <= hi)
        pos = np.full(len(values), -1, dtype=np.int64)
        pos[inside] = table[values[inside] - lo]
        ok = pos >= 0
        return np.where(ok, pos, 0), ok
    pos = np.searchsorted(sorted_ids, values)
    pos_c = np.minimum(pos, len(sorted_ids) - 1)
    return pos_c.astype(np.int64), sorted_ids[pos_c] == values


@dataclass(frozen=True)
class GtColumns:
    """The ground truth's part of a ``FlatCoco`` (``gt_columns``): ids, and annotations sorted by group."""

    image_ids: I64
    category_ids: I64
    box: F64
    area: F64
    crowd: NDArray[np.bool_]
    id: I64
    img: I64
    cat: I64
    order: I64
    n_input: int


def flatten_coco(gt: dict[str, Any], dets: list[dict[str, Any]] | ResultColumns) -> FlatCoco:
    """Validate and flatten; raises ``CocoFormatError`` naming the offending field.

    ``dets`` is the result list, or its columns from ``coco_json.parse_results`` (same numbers).
    """
    return flatten_columns(gt_columns(gt), dets)


def gt_columns(gt: dict[str, Any]) -> GtColumns:
    """The ground truth's columns (the first half of ``flatten_coco``); raises ``CocoFormatError``."""
    if not isinstance(gt, dict):
        raise CocoFormatError("ground truth must be a COCO object with images/annotations/categories")
    image_ids = np.unique(_ids(gt.get("images", []), "images"))
    category_ids = np.unique(_ids(gt.get("categories", []), "categories"))
    anns = gt.get("annotations", [])
    if not isinstance(anns, list):
        raise CocoFormatError("ground truth 'annotations' must be a list")
    n_img = len(image_ids)
    a_img = _column(anns, "image_id", "annotation", np.int64)
    a_cat = _column(anns, "category_id", "annotation", np.int64)
    a_id = _column(anns, "id", "annotation", np.int64)
    try:
        a_box = _boxes([a["bbox"] for a in anns], "annotation")
    except KeyError as exc:
        raise CocoFormatError("every annotation needs 'bbox'") from exc
    try:
        a_crowd = np.array([a.get("iscrowd") or 0 for a in anns], dtype=np.int64).astype(bool)
        a_area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64).reshape(len(anns))
    except (TypeError, ValueError) as exc:
        raise CocoFormatError("annotation 'iscrowd' and 'area' must be numbers") from exc
    missing = np.isnan(a_area)
    a_area[missing] = a_box[missing, 2] * a_box[missing, 3]
    gi, gi_ok = _index_of(image_ids, a_img)
    gc, gc_ok = _index_of(category_ids, a_cat)
    keep = np.flatnonzero(gi_ok & gc_ok)
    gorder = keep[np.argsort(gc[keep] * n_img + gi[keep], kind="stable")]
    return GtColumns(
        image_ids=image_ids,
        category_ids=category_ids,
        box=np.ascontiguousarray(np.take(a_box, gorder, axis=0)),
        area=a_area[gorder],
        crowd=a_crowd[gorder],
        id=a_id[gorder],
        img=gi[gorder],
        cat=gc[gorder],
        order=gorder.astype(np.int64),
        n_input=len(anns),
    )


def flatten_columns(g: GtColumns, dets: list[dict[str, Any]] | ResultColumns) -> FlatCoco:
    """``flatten_coco`` from the ground truth's columns (the second half); raises ``CocoFormatError``."""
    if not isinstance(dets, list | ResultColumns):
        raise CocoFormatError("detections must be a list of {image_id, category_id, bbox, score}")
    image_ids, category_ids, n_img = g.image_ids, g.category_ids, len(g.image_ids)

    # Detections.
    if isinstance(dets, ResultColumns):
        d_img, d_cat, d_score, d_box = dets.image_id, dets.category_id, dets.score, dets.bbox
    else:
        d_img = _column(dets, "image_id", "detection", np.int64)
        d_cat = _column(dets, "category_id", "detection", np.int64)
        d_score = _column(dets, "score", "detection", np.float64)
        try:
            d_box = _boxes([d["bbox"] for d in dets], "detection")
        except KeyError as exc:
            raise CocoFormatError("every detection needs 'bbox'") from exc
    if np.isnan(d_score).any() or np.isnan(d_box).any():
        raise CocoFormatError("every detection 'score' and 'bbox' value must be a number")
    di, di_ok = _index_of(image_ids, d_img)
    if not di_ok.all():
        bad = sorted({int(x) for x in d_img[~di_ok][:5]})
        raise CocoFormatError(
            "detections refer to images not in the ground truth", context={"image_ids": bad}
        )
    dc, dc_ok = _index_of(category_ids, d_cat)
    dkey_all = dc * n_img + di
    kern = kernels()
    n_keys = len(category_ids) * n_img
    if n_keys <= 8 * len(dkey_all) + (1 << 20):  # counting sort: one counter per (category, image)
        dorder = kern.order_detections(dkey_all, dc_ok, -d_score, n_keys)
    else:
        dkeep = np.flatnonzero(dc_ok)
        dorder = dkeep[np.argsort(dkey_all[dkeep], kind="stable")]
        kern.sort_runs_by_score(dorder, dkey_all, -d_score)
    dkey = dkey_all[dorder]
    gkey_sorted = g.cat * n_img + g.img
    keys, det_start, det_end, gt_start, gt_end, det_rank = kern.merge_groups(dkey, gkey_sorted)
    cats = np.arange(len(category_ids), dtype=np.int64)
    cat_det_start = np.searchsorted(dkey, cats * n_img, side="left").astype(np.int64)
    cat_det_end = np.searchsorted(dkey, (cats + 1) * n_img, side="left").astype(np.int64)
    det_box = np.ascontiguousarray(np.take(d_box, dorder, axis=0))  # 7x faster than d_box[dorder]

    return FlatCoco(
        image_ids=image_ids,
        category_ids=category_ids,
        det_box=det_box,
        det_area=det_box[:, 2] * det_box[:, 3],
        det_score=d_score[dorder],
        det_img=di[dorder],
        det_cat=dc[dorder],
        det_rank=det_rank,
        det_input=dorder.astype(np.int64),
        gt_box=g.box,
        gt_area=g.area,
        gt_crowd=g.crowd,
        gt_id=g.id,
        gt_img=g.img,
        gt_cat=g.cat,
        gt_input=g.order,
        group_cat=keys // max(n_img, 1),
        group_img=keys % max(n_img, 1),
        det_start=det_start,
        det_end=det_end,
        gt_start=gt_start,
        gt_end=gt_end,
        cat_det_start=cat_det_start,
        cat_det_end=cat_det_end,
        n_det_input=len(d_img),
        n_gt_input=g.n_input,
    )
