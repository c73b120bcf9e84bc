"""Box geometry: conversions, areas and the COCO box IoU.

Boxes are float64 arrays. ``xywh`` is COCO's ``[x, y, width, height]`` (top-left corner);
``xyxy`` is ``[x1, y1, x2, y2]``.

Public API (other modules build on these signatures):

- ``xywh_to_xyxy(boxes (N, 4)) -> (N, 4)``
- ``box_area(boxes_xywh (N, 4)) -> (N,)`` width * height (what pycocotools ``loadRes`` stores as a
  detection's ``area``; a ground-truth ``area`` comes from its annotation instead).
- ``iou_matrix(dets_xywh (D, 4), gts_xywh (G, 4), gt_crowd (G,) bool) -> (D, G)`` with exactly
  pycocotools ``maskUtils.iou`` semantics for boxes (``bbIou`` in maskApi.c), the same floating point
  operations in the same order so the numbers are bit-identical:

  ``w = min(dx + dw, gx + gw) - max(dx, gx)``, ``h`` likewise; 0 when ``w <= 0`` or ``h <= 0``;
  ``inter = w * h``; ``union = dw * dh`` for a crowd GT (the detection's own area: a crowd region
  absorbs any number of detections) else ``dw * dh + gw * gh - inter``; ``iou = inter / union``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["box_area", "iou_matrix", "paired_iou", "xywh_to_xyxy"]

FloatArray = NDArray[np.float64]


def _as_boxes(boxes: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def xywh_to_xyxy(boxes: ArrayLike) -> FloatArray:
    """``(N, 4)`` ``[x, y, w, h]`` -> ``(N, 4)`` ``[x1, y1, x2, y2]``."""
    arr = _as_boxes(boxes, "boxes")
    out = arr.copy()
    out[:, 2] = arr[:, 0] + arr[:, 2]
    out[:, 3] = arr[:, 1] + arr[:, 3]
    return out


def box_area(boxes_xywh: ArrayLike) -> FloatArray:
    """``(N, 4)`` ``[x, y, w, h]`` -> ``(N,)`` ``w * h``."""
    arr = _as_boxes(boxes_xywh, "boxes_xywh")
    return arr[:, 2] * arr[:, 3]


def iou_matrix(
    dets_xywh: ArrayLike,
    gts_xywh: ArrayLike,
    gt_crowd: ArrayLike | None = None,
) -> FloatArray:
    """IoU of every detection with every ground truth box, pycocotools semantics.

    Args:
        dets_xywh: ``(D, 4)`` detection boxes ``[x, y, w, h]``.
        gts_xywh: ``(G, 4)`` ground-truth boxes ``[x, y, w, h]``.
        gt_crowd: ``(G,)`` bool, ``True`` for ``iscrowd`` GT (union = detection area). ``None`` = none.

    Returns:
        ``(D, G)`` float64 in ``[0, 1]``; ``(D, 0)`` or ``(0, G)`` when a side is empty.
    """
    d = _as_boxes(dets_xywh, "dets_xywh")
    g = _as_boxes(gts_xywh, "gts_xywh")
    crowd = np.zeros(len(g), dtype=bool) if gt_crowd is None else np.asarray(gt_crowd, dtype=bool)
    if crowd.shape != (len(g),):
        raise ValueError(f"gt_crowd must have shape ({len(g)},), got {crowd.shape}")
    if len(d) == 0 or len(g) == 0:
        return np.zeros((len(d), len(g)), dtype=np.float64)
    dx, dy, dw, dh = (d[:, i : i + 1] for i in range(4))
    gx, gy, gw, gh = (g[None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    da = dw * dh
    ga = gw * gh
    union = np.where(crowd[None, :], da, da + ga - inter)
    out = np.zeros((len(d), len(g)), dtype=np.float64)
    np.divide(inter, union, out=out, where=overlap)
    return out


def paired_iou(
    dets_xywh: ArrayLike,
    gts_xywh: ArrayLike,
    gt_crowd: ArrayLike | None = None,
) -> FloatArray:
    """IoU of pairs: detection ``i`` with GT ``i``; ``(N, 4)``, ``(N, 4)``, ``(N,)`` -> ``(N,)``.

    Same arithmetic as ``iou_matrix`` (so a pair's value equals the matrix entry bit for bit).
    """
    d = _as_boxes(dets_xywh, "dets_xywh")
    g = _as_boxes(gts_xywh, "gts_xywh")
    if d.shape != g.shape:
        raise ValueError(f"paired boxes need equal shapes, got {d.shape} and {g.shape}")
    crowd = np.zeros(len(g), dtype=bool) if gt_crowd is None else np.asarray(gt_crowd, dtype=bool)
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    da = d[:, 2] * d[:, 3]
    union = np.where(crowd, da, da + g[:, 2] * g[:, 3] - inter)
    out = np.zeros(len(d), dtype=np.float64)
    np.divide(inter, union, out=out, where=overlap)
    return out
