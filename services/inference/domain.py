"""YOLOv8 pre- and post-processing in pure numpy (no torch, no ultralytics, no I/O).

Pre-processing: ``letterbox`` resizes an image to fit a square ``imgsz`` keeping its aspect ratio,
centres it and pads with grey 114 (ultralytics' ``LetterBox(auto=False, center=True)``), then
``to_chw`` makes the float32 ``[3, H, W]`` tensor in [0, 1].

Post-processing of the standard export output ``[B, 4 + nc, N]`` (rows: cx, cy, w, h, then one score
per class; no objectness): ``postprocess`` keeps each anchor's best class (single label), drops scores
at or below the confidence threshold, runs NMS (per class, or class-agnostic), keeps the
``max_det`` best boxes and maps them back from letterbox space to the original image (clipped).
It reproduces ``ultralytics.utils.nms.non_max_suppression`` + ``ops.scale_boxes`` (checked in
tests/unit/inference/test_parity.py on the demo detector's raw outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114
MAX_WH = 7680.0  # class offset for per-class NMS in one pass (ultralytics' max_wh)
MAX_NMS = 30000  # most candidates sorted into NMS per image


@dataclass(frozen=True)
class Letterbox:
    """Where an ``orig_h x orig_w`` image sits inside the ``size_h x size_w`` model input."""

    orig_h: int
    orig_w: int
    size_h: int
    size_w: int
    gain: float
    new_h: int
    new_w: int
    top: int
    left: int

    @classmethod
    def fit(cls, orig_h: int, orig_w: int, size_h: int, size_w: int | None = None) -> Letterbox:
        size_w = size_h if size_w is None else size_w
        gain = min(size_h / orig_h, size_w / orig_w)
        new_w, new_h = max(round(orig_w * gain), 1), max(round(orig_h * gain), 1)
        dw, dh = (size_w - new_w) / 2, (size_h - new_h) / 2
        return cls(orig_h, orig_w, size_h, size_w, gain, new_h, new_w, round(dh - 0.1), round(dw - 0.1))

    @property
    def gain_x(self) -> float:
        """Exact horizontal scale of the resized image (sides are rounded to whole pixels)."""
        return self.new_w / self.orig_w

    @property
    def gain_y(self) -> float:
        return self.new_h / self.orig_h


@dataclass(frozen=True)
class Detections:
    """Boxes of one image. ``boxes``: float32 ``[K, 4]`` xyxy pixels of the original image;
    ``scores``: float32 ``[K]``; ``classes``: int64 ``[K]`` model class indices. Sorted by score."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def xywh(self) -> np.ndarray:
        """``[K, 4]`` (x, y, w, h) top-left + size, the storage format."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def letterbox_array(image: np.ndarray | None, lb: Letterbox, resized: np.ndarray | None = None) -> np.ndarray:
    """Place ``resized`` (``[new_h, new_w, 3]`` uint8, default: a nearest resize of ``image``) on the
    grey ``[size_h, size_w, 3]`` canvas described by ``lb``."""
    if resized is None:
        if image is None:
            raise ValueError("letterbox_array needs an image or its resized copy")
        ys = np.minimum((np.arange(lb.new_h) + 0.5) / lb.gain, lb.orig_h - 1).astype(np.int64)
        xs = np.minimum((np.arange(lb.new_w) + 0.5) / lb.gain, lb.orig_w - 1).astype(np.int64)
        resized = image[ys][:, xs]
    canvas = np.full((lb.size_h, lb.size_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[lb.top : lb.top + lb.new_h, lb.left : lb.left + lb.new_w] = resized[: lb.new_h, : lb.new_w]
    return canvas


def _axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a linear resize along one axis (pixel centres aligned)."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    low = i0 < 0
    i0[low], frac[low] = 0, 0.0
    high = i0 >= src - 1
    i0[high], frac[high] = src - 1, 0.0
    return i0, np.minimum(i0 + 1, src - 1), frac


def resize_bilinear(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """``[H, W, C]`` uint8 -> ``[new_h, new_w, C]`` uint8, bilinear without antialiasing: the same
    sampling as OpenCV's ``INTER_LINEAR``, which ultralytics trains and predicts with."""
    h, w = image.shape[:2]
    if (h, w) == (new_h, new_w):
        return image
    y0, y1, fy = _axis(h, new_h)
    x0, x1, fx = _axis(w, new_w)
    src = image.astype(np.float32)
    fy3 = fy[:, None, None]
    rows = src[y0] * (1 - fy3) + src[y1] * fy3
    fx3 = fx[None, :, None]
    out = rows[:, x0] * (1 - fx3) + rows[:, x1] * fx3
    return np.rint(out).clip(0, 255).astype(np.uint8)


def to_chw(canvas: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[3, H, W]`` float32 in [0, 1] (written into ``out`` if given)."""
    chw = canvas.transpose(2, 0, 1)
    if out is None:
        return chw.astype(np.float32) * np.float32(1 / 255)
    np.multiply(chw, np.float32(1 / 255), out=out, casting="unsafe")
    return out


def xywh2xyxy(b: np.ndarray) -> np.ndarray:
    """``[..., 4]`` centre-size -> corners."""
    out = np.empty_like(b)
    half_w, half_h = b[..., 2] / 2, b[..., 3] / 2
    out[..., 0] = b[..., 0] - half_w
    out[..., 1] = b[..., 1] - half_h
    out[..., 2] = b[..., 0] + half_w
    out[..., 3] = b[..., 1] + half_h
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS. ``boxes`` ``[K, 4]`` xyxy, ``scores`` ``[K]`` -> kept indices, best first.

    A box is dropped when its IoU with a kept, higher-scoring box is above ``iou_threshold``
    (torchvision.ops.nms semantics: areas without +1)."""
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    b = boxes.astype(np.float32, copy=False)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode(
    output: np.ndarray,
    *,
    conf_threshold: float,
    iou_threshold: float,
    agnostic: bool = False,
    max_det: int = 300,
) -> list[Detections]:
    """Raw ``[B, 4 + nc, N]`` -> per image: boxes in model-input pixels (xyxy), scores, classes."""
    if output.ndim != 3 or output.shape[1] < 5:
        raise ValueError(f"expected a YOLOv8 output [B, 4 + nc, N], got shape {output.shape}")
    results = []
    for pred in output:
        scores_all = pred[4:]  # [nc, N]
        cls = scores_all.argmax(axis=0)
        conf = scores_all[cls, np.arange(pred.shape[1])]
        cand = np.nonzero(conf > conf_threshold)[0]
        if cand.size == 0:
            results.append(Detections.empty())
            continue
        conf_c, cls_c = conf[cand], cls[cand]
        if cand.size > MAX_NMS:
            top = np.argsort(-conf_c, kind="stable")[:MAX_NMS]
            cand, conf_c, cls_c = cand[top], conf_c[top], cls_c[top]
        boxes = xywh2xyxy(pred[:4, cand].T)
        offset = 0.0 if agnostic else cls_c[:, None].astype(np.float32) * MAX_WH
        keep = nms(boxes + offset, conf_c, iou_threshold)[:max_det]
        results.append(
            Detections(
                boxes[keep].astype(np.float32),
                conf_c[keep].astype(np.float32),
                cls_c[keep].astype(np.int64),
            )
        )
    return results


def scale_to_original(det: Detections, lb: Letterbox) -> Detections:
    """Map boxes from model-input pixels back to the original image, clipped to it."""
    if len(det) == 0:
        return det
    b = det.boxes.copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - lb.left) / lb.gain_x
    b[:, [1, 3]] = (b[:, [1, 3]] - lb.top) / lb.gain_y
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, lb.orig_w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, lb.orig_h)
    return Detections(b, det.scores, det.classes)


def postprocess(
    output: np.ndarray,
    letterboxes: list[Letterbox],
    *,
    conf_threshold: float,
    iou_threshold: float,
    agnostic: bool = False,
    max_det: int = 300,
) -> list[Detections]:
    """``decode`` + ``scale_to_original`` for a batch whose images were letterboxed as ``letterboxes``."""
    if output.shape[0] != len(letterboxes):
        raise ValueError(f"{output.shape[0]} outputs for {len(letterboxes)} images")
    dets = decode(
        output, conf_threshold=conf_threshold, iou_threshold=iou_threshold, agnostic=agnostic, max_det=max_det
    )
    return [scale_to_original(d, lb) for d, lb in zip(dets, letterboxes, strict=True)]
