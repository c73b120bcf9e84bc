from __future__ import annotations

import numpy as np
import pytest

from shared.metrics.coco import accumulate_class, match_image_class
from tests.unit.metrics_coco.cocogen import make_dataset, pycoco_eval


def test_hand_computed_curve() -> None:
    # Sorted: TP, FP, TP with 2 GT -> precision 1, 1/2, 2/3; envelope 1, 2/3, 2/3.
    scores = np.array([0.9, 0.8, 0.7])
    tp = np.array([[True, False, True]])
    fp = ~tp
    c = accumulate_class(scores, tp, fp, num_gt=2)
    assert c.recall is not None and c.precision is not None and c.ap is not None
    assert c.recall.tolist() == [1.0]
    prec = c.precision[0]
    assert np.allclose(prec[:51], 1.0)  # recall <= 0.5 reached at the first detection (1 - eps)
    assert np.allclose(prec[51:], 2 / 3)
    assert c.ap[0] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert c.scores_at_recall is not None
    assert c.scores_at_recall[0, 0] == 0.9 and c.scores_at_recall[0, 100] == 0.7


def test_input_order_does_not_matter_but_ties_keep_it() -> None:
    scores = np.array([0.5, 0.9, 0.5])
    tp = np.array([[True, True, False]])
    a = accumulate_class(scores, tp, ~tp, num_gt=3)
    b = accumulate_class(scores[[1, 0, 2]], tp[:, [1, 0, 2]], ~tp[:, [1, 0, 2]], num_gt=3)
    assert a.order.tolist() == [1, 0, 2]
    assert a.precision is not None and b.precision is not None
    assert np.array_equal(a.precision, b.precision)
    swapped = accumulate_class(scores[[2, 1, 0]], tp[:, [2, 1, 0]], ~tp[:, [2, 1, 0]], num_gt=3)
    assert swapped.precision is not None
    assert not np.array_equal(a.precision, swapped.precision)  # the tie is broken by input order


def test_no_gt_gives_none_and_no_dets_gives_zero() -> None:
    c = accumulate_class(np.array([0.3]), np.array([[False]]), np.array([[True]]), num_gt=0)
    assert c.precision is None and c.recall is None and c.ap is None
    c = accumulate_class(np.zeros(0), np.zeros((10, 0), bool), np.zeros((10, 0), bool), num_gt=4)
    assert c.ap is not None and c.recall is not None
    assert c.ap.tolist() == [0.0] * 10 and c.recall.tolist() == [0.0] * 10


def test_ignored_detections_keep_their_position() -> None:
    scores = np.array([0.9, 0.8, 0.7])
    tp = np.array([[False, True, False]])
    fp = np.array([[False, False, True]])  # the first is ignored
    c = accumulate_class(scores, tp, fp, num_gt=1)
    assert c.scores_at_recall is not None and c.precision is not None
    assert c.precision[0, 100] == pytest.approx(1.0)
    assert c.scores_at_recall[0, 0] == 0.9  # recall 0 is "reached" at the ignored first detection


@pytest.mark.parametrize("seed", [5, 6])
def test_one_class_matches_pycocotools_accumulate(seed: int) -> None:
    gt, dets = make_dataset(seed, n_images=25)
    ev = pycoco_eval(gt, dets)
    images = sorted(im["id"] for im in gt["images"])
    for k, cat in enumerate(ev.params.catIds):
        scores, tps, fps, num_gt = [], [], [], 0
        for img in images:  # ascending image id, each image's detections in matching order
            g = [a for a in gt["annotations"] if a["image_id"] == img and a["category_id"] == cat]
            dd = [d for d in dets if d["image_id"] == img and d["category_id"] == cat]
            m = match_image_class(
                np.array([d["bbox"] for d in dd]).reshape(-1, 4),
                np.array([d["score"] for d in dd]),
                np.array([a["bbox"] for a in g]).reshape(-1, 4),
                np.array([a["iscrowd"] for a in g], dtype=bool),
                np.array([a["area"] for a in g]),
            )
            scores.append(np.array([d["score"] for d in dd])[m.det_order])
            tps.append(m.tp[:, m.det_order])
            fps.append(m.fp[:, m.det_order])
            num_gt += int((~m.gt_ignored).sum())
        c = accumulate_class(np.concatenate(scores), np.hstack(tps), np.hstack(fps), num_gt)
        want = ev.eval["precision"][:, :, k, 0, 2]
        if num_gt == 0:
            assert c.precision is None and (want == -1).all()
        else:
            assert c.precision is not None and c.recall is not None and c.scores_at_recall is not None
            assert np.array_equal(c.precision, want)
            assert np.array_equal(c.recall, ev.eval["recall"][:, k, 0, 2])
            assert np.array_equal(c.scores_at_recall, ev.eval["scores"][:, :, k, 0, 2])


def test_accumulate_all_with_and_without_uniform_codes_agree() -> None:
    """``accumulate_all`` (used by services/metrics) derives the codes the engine passes explicitly."""
    from shared.metrics import coco_accumulate as KA
    from shared.metrics import coco_kernels as K
    from shared.metrics.coco_input import flatten_coco
    from shared.metrics.coco_params import AREA_NAMES, AREA_RANGES, COCO_IOU_THRESHOLDS, COCO_REC_THRESHOLDS

    gt, dets = make_dataset(9, n_images=25)
    f = flatten_coco(gt, dets)
    lo = np.array([AREA_RANGES[a][0] for a in AREA_NAMES])
    hi = np.array([AREA_RANGES[a][1] for a in AREA_NAMES])
    raw = K.match_groups_status(
        f.det_box, f.det_area, f.gt_box, f.gt_area, f.gt_crowd, f.det_start, f.det_end,
        f.gt_start, f.gt_end, COCO_IOU_THRESHOLDS, lo, hi, 100,
    )  # fmt: skip
    status, uniform = raw[0], raw[7]
    assert np.array_equal(KA.uniform_codes(status), uniform)
    num_gt = np.stack([np.bincount(f.gt_cat[~raw[3][a]], minlength=len(f.category_ids)) for a in range(4)], 1)
    args = (f.det_score, f.det_rank, f.cat_det_start, f.cat_det_end, status)
    tail = (num_gt.astype(np.int64), np.array([1, 10, 100]), COCO_REC_THRESHOLDS)
    plain = KA.accumulate_all(*args, *tail)
    fast = KA.accumulate_all_uniform(*args, uniform, *tail)
    for x, y in zip(plain, fast, strict=True):
        assert np.array_equal(x, y)
