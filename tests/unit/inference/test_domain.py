"""YOLOv8 pre/post-processing on hand-made inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from services.inference.domain import (
    PAD_VALUE,
    Letterbox,
    decode,
    letterbox_array,
    nms,
    postprocess,
    scale_to_original,
    to_chw,
    xywh2xyxy,
)


def _raw(boxes_xywh: list[list[float]], scores: list[list[float]], n_anchors: int = 8) -> np.ndarray:
    """One image's output [1, 4 + nc, N]: the given anchors first, the rest zero."""
    nc = len(scores[0])
    out = np.zeros((1, 4 + nc, n_anchors), np.float32)
    for j, (b, s) in enumerate(zip(boxes_xywh, scores, strict=True)):
        out[0, :4, j] = b
        out[0, 4:, j] = s
    return out


def test_letterbox_geometry_wide_and_tall() -> None:
    wide = Letterbox.fit(orig_h=240, orig_w=320, size_h=256)
    assert (wide.new_w, wide.new_h) == (256, 192)
    assert (wide.left, wide.top) == (0, 32)
    tall = Letterbox.fit(orig_h=320, orig_w=256, size_h=256)
    assert (tall.new_w, tall.new_h) == (205, 256)
    assert tall.left == 25 and tall.top == 0
    tiny = Letterbox.fit(orig_h=1, orig_w=1000, size_h=256)
    assert tiny.new_h == 1  # never zero pixels


def test_letterbox_array_pads_grey_and_centres() -> None:
    img = np.full((240, 320, 3), 7, np.uint8)
    lb = Letterbox.fit(240, 320, 256)
    canvas = letterbox_array(img, lb)
    assert canvas.shape == (256, 256, 3)
    assert (canvas[: lb.top] == PAD_VALUE).all() and (canvas[lb.top + lb.new_h :] == PAD_VALUE).all()
    assert (canvas[lb.top : lb.top + lb.new_h] == 7).all()
    chw = to_chw(canvas)
    assert chw.shape == (3, 256, 256) and chw.dtype == np.float32
    assert chw.max() == pytest.approx(PAD_VALUE / 255)
    with pytest.raises(ValueError, match="needs an image"):
        letterbox_array(None, lb)


def test_nms_suppresses_overlaps_above_threshold_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # IoU(0,1) = 90/110 = 0.818; IoU(3,0) = 0.5; IoU(3,1) = 45/105
    assert nms(boxes, scores, 0.7).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.4).tolist() == [3, 2]
    assert nms(boxes, scores, 0.9).tolist() == [3, 0, 1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_decode_class_wise_vs_agnostic_and_threshold() -> None:
    raw = _raw(
        [[50, 50, 20, 20], [51, 50, 20, 20], [50, 50, 20, 20], [200, 200, 10, 10]],
        [[0.9, 0.1], [0.8, 0.05], [0.1, 0.85], [0.2, 0.04]],
    )
    per_class = decode(raw, conf_threshold=0.25, iou_threshold=0.5)[0]
    # anchor 1 (class 0) is suppressed by anchor 0; anchor 2 is class 1 and survives; anchor 3 is too weak
    assert per_class.classes.tolist() == [0, 1]
    assert per_class.scores.tolist() == pytest.approx([0.9, 0.85])
    np.testing.assert_allclose(per_class.boxes[0], [40, 40, 60, 60])
    agnostic = decode(raw, conf_threshold=0.25, iou_threshold=0.5, agnostic=True)[0]
    assert agnostic.classes.tolist() == [0]
    low = decode(raw, conf_threshold=0.15, iou_threshold=0.5)[0]
    assert float(low.scores[-1]) == pytest.approx(0.2)
    capped = decode(raw, conf_threshold=0.0, iou_threshold=0.99, max_det=2)[0]
    assert len(capped) == 2


def test_decode_rejects_wrong_shape_and_handles_empty() -> None:
    with pytest.raises(ValueError, match=r"\[B, 4 \+ nc, N\]"):
        decode(np.zeros((1, 4, 10), np.float32), conf_threshold=0.1, iou_threshold=0.5)
    with pytest.raises(ValueError, match="got shape"):
        decode(np.zeros((9, 16), np.float32), conf_threshold=0.1, iou_threshold=0.5)
    empty = decode(np.zeros((2, 9, 16), np.float32), conf_threshold=0.1, iou_threshold=0.5)
    assert [len(d) for d in empty] == [0, 0]


def test_boxes_map_back_to_the_original_image() -> None:
    lb = Letterbox.fit(orig_h=240, orig_w=320, size_h=256)  # gain 0.8, pad top 32
    orig = np.array([[32, 40, 96, 120]], np.float32)  # xyxy in the 320x240 image
    model_space = orig * 0.8 + np.array([0, 32, 0, 32], np.float32)
    cxcywh = np.concatenate(
        [(model_space[:, :2] + model_space[:, 2:]) / 2, model_space[:, 2:] - model_space[:, :2]], 1
    )
    raw = _raw(cxcywh.tolist(), [[0.9]])
    det = postprocess(raw, [lb], conf_threshold=0.5, iou_threshold=0.5)[0]
    np.testing.assert_allclose(det.boxes, orig, atol=1e-4)
    np.testing.assert_allclose(det.xywh, [[32, 40, 64, 80]], atol=1e-4)
    # boxes spilling over the padding are clipped to the image
    spill = decode(_raw([[10, 20, 40, 40]], [[0.9]]), conf_threshold=0.5, iou_threshold=0.5)[0]
    clipped = scale_to_original(spill, lb)
    assert clipped.boxes[0, 0] == 0 and clipped.boxes[0, 1] == 0
    with pytest.raises(ValueError, match="outputs for"):
        postprocess(raw, [lb, lb], conf_threshold=0.5, iou_threshold=0.5)


def test_xywh2xyxy() -> None:
    np.testing.assert_allclose(xywh2xyxy(np.array([[10.0, 20.0, 4.0, 6.0]])), [[8, 17, 12, 23]])


def test_resize_bilinear_matches_opencv_sampling() -> None:
    from services.inference.domain import resize_bilinear

    img = np.array([[0, 100], [200, 255]], np.uint8)[:, :, None]
    up = resize_bilinear(img, 4, 4)[:, :, 0]
    # cv2.resize(img, (4, 4), interpolation=cv2.INTER_LINEAR) (pixel-centre aligned, edges clamped);
    # OpenCV rounds its fixed-point weights, so allow one grey level
    expected = np.array([[0, 25, 75, 100], [50, 72, 117, 139], [150, 167, 200, 216], [200, 214, 241, 255]])
    assert np.abs(up.astype(int) - expected).max() <= 1
    flat = np.full((30, 40, 3), 77, np.uint8)
    assert (resize_bilinear(flat, 13, 17) == 77).all()
    assert resize_bilinear(flat, 30, 40) is flat


def test_pillow_resize_matches_the_numpy_reference() -> None:
    from PIL import Image

    from services.inference.detector import resize_image
    from services.inference.domain import resize_bilinear

    rng = np.random.default_rng(1)
    for h, w, nh, nw in [(240, 320, 192, 256), (1000, 700, 256, 179), (50, 60, 200, 240)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        fast = np.asarray(resize_image(Image.fromarray(img), nw, nh)).astype(int)
        assert fast.shape == (nh, nw, 3)
        assert np.abs(fast - resize_bilinear(img, nh, nw).astype(int)).max() <= 1
