from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from shared.metrics.boxes import box_area, iou_matrix, paired_iou, xywh_to_xyxy


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.choice([0.0, 0.5, 1.0, 3.0, 40.0], (n, 2)) + rng.uniform(0, 30, (n, 2)) * (
        rng.random((n, 2)) < 0.7
    )
    return np.hstack([xy, wh])


@pytest.mark.parametrize("seed", range(5))
def test_iou_matrix_is_bit_identical_to_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d, g = _random_boxes(rng, 40), _random_boxes(rng, 25)
    crowd = rng.random(25) < 0.3
    ours = iou_matrix(d, g, crowd)
    theirs = np.asarray(mask_utils.iou(d.tolist(), g.tolist(), crowd.astype(np.uint8).tolist()))
    assert ours.shape == (40, 25)
    assert np.array_equal(ours, theirs)


def test_crowd_union_is_the_detection_area() -> None:
    gt = np.array([[0.0, 0.0, 100.0, 100.0]])
    det = np.array([[10.0, 10.0, 10.0, 10.0], [90.0, 90.0, 20.0, 20.0]])
    assert iou_matrix(det, gt, np.array([True]))[:, 0].tolist() == [1.0, 0.25]
    assert iou_matrix(det, gt, np.array([False]))[:, 0].tolist() == [0.01, 100.0 / (400.0 + 10000.0 - 100.0)]


def test_touching_and_empty_boxes_have_zero_iou() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 0.0, 3.0]])
    b = np.array([[10.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    out = iou_matrix(a, b)
    assert out[0].tolist() == [0.0, 1.0]
    assert out[1].tolist() == [0.0, 0.0]


def test_empty_sides_give_empty_matrices() -> None:
    assert iou_matrix(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert iou_matrix(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    assert iou_matrix([], []).shape == (0, 0)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="dets_xywh"):
        iou_matrix(np.ones((2, 3)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="gt_crowd"):
        iou_matrix(np.ones((2, 4)), np.ones((1, 4)), np.array([True, False]))


def test_paired_iou_equals_the_matrix_diagonal() -> None:
    rng = np.random.default_rng(7)
    d, g = _random_boxes(rng, 30), _random_boxes(rng, 30)
    crowd = rng.random(30) < 0.5
    full = np.array([iou_matrix(d[i : i + 1], g[i : i + 1], crowd[i : i + 1])[0, 0] for i in range(30)])
    assert np.array_equal(paired_iou(d, g, crowd), full)


def test_conversions() -> None:
    b = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert xywh_to_xyxy(b).tolist() == [[1.0, 2.0, 4.0, 6.0]]
    assert box_area(b).tolist() == [12.0]
    assert box_area(np.zeros((0, 4))).shape == (0,)
