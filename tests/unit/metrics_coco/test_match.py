from __future__ import annotations

import numpy as np
import pytest

from shared.metrics.coco import AREA_RANGES, COCO_IOU_THRESHOLDS, match_image_class
from tests.unit.metrics_coco.cocogen import make_dataset, pycoco_eval

B = np.array


def test_highest_score_matches_first_and_duplicate_is_fp() -> None:
    gt = B([[0.0, 0.0, 10.0, 10.0]])
    dets = B([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0]])
    m = match_image_class(dets, B([0.2, 0.9]), gt, B([False]), B([100.0]))
    assert m.det_order.tolist() == [1, 0]
    assert m.det_matched_gt[0].tolist() == [-1, 0]
    assert m.gt_matched_det[0].tolist() == [1]
    assert m.tp[0].tolist() == [False, True] and m.fp[0].tolist() == [True, False]
    # IoU 0.9 clears every threshold below 0.9 only.
    assert m.tp[:, 1].tolist() == [t <= 0.9 + 1e-12 for t in COCO_IOU_THRESHOLDS]
    assert m.ious[1, 0] == pytest.approx(0.9)


def test_crowd_absorbs_several_detections_without_tp_or_fp() -> None:
    gt = B([[0.0, 0.0, 100.0, 100.0]])
    dets = B([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 10.0, 10.0], [95.0, 95.0, 20.0, 20.0]])
    m = match_image_class(dets, B([0.9, 0.8, 0.7]), gt, B([True]), B([10000.0]))
    assert m.det_matched_gt[0].tolist() == [0, 0, -1]
    assert m.det_ignored[0].tolist() == [True, True, False]
    assert m.fp[0].tolist() == [False, False, True]
    assert m.gt_ignored.tolist() == [True]
    assert not m.fn.any()


def test_regular_gt_is_preferred_over_a_better_crowd_gt() -> None:
    gt = B([[0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 12.0, 12.0]])
    dets = B([[0.0, 0.0, 10.0, 10.0]])
    m = match_image_class(dets, B([0.9]), gt, B([True, False]), B([10000.0, 144.0]))
    assert m.det_matched_gt[0].tolist() == [1]  # IoU 100/144 with the regular GT, 1.0 with the crowd
    assert m.tp[0].tolist() == [True]


def test_equal_iou_goes_to_the_later_gt() -> None:
    gt = B([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    m = match_image_class(B([[0.0, 0.0, 10.0, 10.0]]), B([0.5]), gt, B([False, False]), B([100.0, 100.0]))
    assert m.det_matched_gt[0].tolist() == [1]


def test_area_range_ignores_gt_and_unmatched_detections_outside_it() -> None:
    gt = B([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 50.0, 50.0]])
    dets = B([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 50.0, 50.0], [300.0, 300.0, 5.0, 5.0]])
    # GT area from the annotation, not the box: the first GT says it is medium.
    m = match_image_class(
        dets, B([0.9, 0.8, 0.7]), gt, B([False, False]), B([2000.0, 2500.0]), area_range=AREA_RANGES["small"]
    )
    assert m.gt_ignored.tolist() == [True, True]
    assert m.det_ignored[0].tolist() == [True, True, False]  # 2 matched ignored GT; 3rd is small
    m = match_image_class(
        dets, B([0.9, 0.8, 0.7]), gt, B([False, False]), B([2000.0, 2500.0]), area_range=AREA_RANGES["medium"]
    )
    assert m.tp[0].tolist() == [True, True, False]
    assert m.det_ignored[0].tolist() == [False, False, True]  # unmatched and area 25 < 32**2


def test_area_limits_are_inclusive() -> None:
    gt = B([[0.0, 0.0, 32.0, 32.0]])
    for name in ("small", "medium"):
        m = match_image_class(gt, B([1.0]), gt, B([False]), B([1024.0]), area_range=AREA_RANGES[name])
        assert m.tp[0].tolist() == [True], name


def test_max_dets_keeps_the_best_scores() -> None:
    gt = B([[0.0, 0.0, 10.0, 10.0]])
    dets = np.repeat(gt, 3, axis=0)
    m = match_image_class(dets, B([0.1, 0.3, 0.2]), gt, B([False]), B([100.0]), max_dets=1)
    assert m.det_order.tolist() == [1]
    assert m.tp[0].tolist() == [False, True, False]
    assert m.det_ignored[0].tolist() == [True, False, True]


def test_no_gt_and_no_dets() -> None:
    m = match_image_class(np.zeros((0, 4)), np.zeros(0), B([[0.0, 0, 5, 5]]), B([False]), B([25.0]))
    assert m.fn.tolist() == [[True]] * 10
    m = match_image_class(B([[0.0, 0, 5, 5]]), B([0.5]), np.zeros((0, 4)), np.zeros(0, bool), np.zeros(0))
    assert m.fp.all() and m.ious.shape == (1, 0)


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_pycocotools_evaluate_img_on_every_group(seed: int) -> None:
    gt, dets = make_dataset(seed, n_images=20)
    ev = pycoco_eval(gt, dets)
    p = ev.params
    checked = 0
    for e in ev.evalImgs:
        if e is None:
            continue
        g = [
            a
            for a in gt["annotations"]
            if a["image_id"] == e["image_id"] and a["category_id"] == e["category_id"]
        ]
        dd = [
            (i, d)
            for i, d in enumerate(dets)
            if d["image_id"] == e["image_id"] and d["category_id"] == e["category_id"]
        ]
        m = match_image_class(
            np.array([d["bbox"] for _, d in dd]).reshape(-1, 4),
            np.array([d["score"] for _, d in dd]),
            np.array([a["bbox"] for a in g]).reshape(-1, 4),
            np.array([a["iscrowd"] for a in g], dtype=bool),
            np.array([a["area"] for a in g]),
            area_range=tuple(e["aRng"]),
            max_dets=e["maxDet"],
        )
        # pycocotools: dets by id (= input index + 1) in score order, GT reordered ignore-last.
        det_ids = [dd[j][0] + 1 for j in m.det_order]
        assert det_ids == e["dtIds"]
        gt_pos = {a["id"]: j for j, a in enumerate(g)}
        want = np.array([[gt_pos.get(int(x), -1) if x > 0 else -1 for x in row] for row in e["dtMatches"]])
        assert np.array_equal(m.det_matched_gt[:, m.det_order], want.reshape(len(p.iouThrs), -1))
        assert np.array_equal(m.det_ignored[:, m.det_order], e["dtIgnore"].astype(bool))
        assert np.array_equal(m.gt_ignored[[gt_pos[i] for i in e["gtIds"]]], e["gtIgnore"].astype(bool))
        checked += 1
    assert checked > 50


def test_full_and_compact_group_kernels_agree() -> None:
    """``match_groups`` (used by shared.metrics.rows) and ``match_groups_status`` are the same matching."""
    from shared.metrics import coco_kernels as K
    from shared.metrics.coco_input import flatten_coco
    from shared.metrics.coco_params import AREA_NAMES

    gt, dets = make_dataset(8, n_images=25)
    f = flatten_coco(gt, dets)
    lo = np.array([AREA_RANGES[a][0] for a in AREA_NAMES])
    hi = np.array([AREA_RANGES[a][1] for a in AREA_NAMES])
    args = (f.det_box, f.det_area, f.gt_box, f.gt_area, f.gt_crowd, f.det_start, f.det_end)
    args2 = (f.gt_start, f.gt_end, COCO_IOU_THRESHOLDS, lo, hi, 100)
    dm, di, gm, gi, *best = K.match_groups(*args, *args2)
    status, dm0, gm0, gi2, *best2, uniform = K.match_groups_status(*args, *args2)
    kept = f.det_rank < 100
    code = np.where(di, K.IGNORED, np.where(dm >= 0, K.TP, K.FP)).transpose(2, 0, 1)
    assert np.array_equal(status[kept], code[kept])
    assert (status[~kept] == K.IGNORED).all()
    assert np.array_equal(dm[0], dm0) and np.array_equal(gm[0], gm0) and np.array_equal(gi, gi2)
    for x, y in zip(best, best2, strict=True):
        assert np.array_equal(x, y)
    same = (status == status[:, :, :1]).all(axis=2)
    assert np.array_equal(uniform, np.where(same, status[:, :, 0], -1))
