"""evaluate_coco against pycocotools on generated datasets: every number, every array, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.metrics.coco import STAT_KEYS, evaluate_coco
from tests.unit.metrics_coco.cocogen import make_dataset, pycoco_eval, pycoco_per_class


def _assert_same(gt: dict[str, Any], dets: list[dict[str, Any]]) -> None:
    ev = pycoco_eval(gt, dets)
    res = evaluate_coco(gt, dets)
    ours = np.array([-1.0 if res.stats[k] is None else res.stats[k] for k in STAT_KEYS])
    assert np.abs(ours - ev.stats).max() <= 1e-9, (ours, ev.stats)
    assert np.array_equal(ours, ev.stats)  # in fact bit-identical
    for name in ("precision", "recall", "scores"):
        assert np.array_equal(np.nan_to_num(getattr(res, name), nan=-1.0), ev.eval[name]), name
    want = pycoco_per_class(ev)
    for cid, cs in res.per_class.items():
        got = tuple(-1.0 if v is None else v for v in (cs.ap, cs.ap50, cs.ap75))
        assert np.allclose(got, want[cid], atol=1e-12, rtol=0), cid


@pytest.mark.parametrize("seed", range(6))
def test_generated_datasets_match_pycocotools(seed: int) -> None:
    gt, dets = make_dataset(seed, n_images=40, score_decimals=[1, 2, None][seed % 3])
    _assert_same(gt, dets)


def test_many_classes_sparse_images() -> None:
    gt, dets = make_dataset(11, n_images=60, n_classes=25, max_gt=4, crowd_rate=0.3)
    _assert_same(gt, dets)


def test_all_scores_tied() -> None:
    gt, dets = make_dataset(12, n_images=30)
    for d in dets:
        d["score"] = 0.5
    _assert_same(gt, dets)


def test_only_crowd_ground_truth_is_undefined() -> None:
    gt, dets = make_dataset(13, n_images=15, crowd_rate=1.0)
    res = evaluate_coco(gt, dets)
    assert res.stats["mAP"] is None and res.stats["AR100"] is None
    _assert_same(gt, dets)


def test_no_detections_at_all() -> None:
    gt, _ = make_dataset(14, n_images=10)
    res = evaluate_coco(gt, [])
    assert res.stats["mAP"] == 0.0 and res.stats["AR100"] == 0.0
    assert res.per_class[min(res.per_class)].ap in (0.0, None)


def test_ignores_detections_of_unknown_categories_and_rejects_unknown_images() -> None:
    gt, dets = make_dataset(15, n_images=10)
    base = evaluate_coco(gt, dets).stats
    extra = [*dets, {"image_id": 1, "category_id": 12345, "bbox": [0, 0, 5, 5], "score": 1.0}]
    assert evaluate_coco(gt, extra).stats == base
    from shared.metrics.coco import CocoFormatError

    with pytest.raises(CocoFormatError, match="images not in the ground truth"):
        evaluate_coco(gt, [*dets, {"image_id": 99999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.0}])
    with pytest.raises(CocoFormatError, match="'score'"):
        evaluate_coco(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}])
    with pytest.raises(CocoFormatError, match="bbox"):
        evaluate_coco(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.2}])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_images=st.integers(1, 25),
    n_classes=st.integers(1, 8),
    crowd_rate=st.sampled_from([0.0, 0.1, 0.5]),
    decimals=st.sampled_from([0, 1, 2, None]),
    many=st.integers(0, 2),
)
def test_hypothesis_parity(
    seed: int, n_images: int, n_classes: int, crowd_rate: float, decimals: int | None, many: int
) -> None:
    gt, dets = make_dataset(
        seed,
        n_images=n_images,
        n_classes=n_classes,
        crowd_rate=crowd_rate,
        score_decimals=decimals,
        many_dets_images=many,
    )
    if not dets:  # pycocotools cannot load an empty result list
        return
    _assert_same(gt, dets)


def test_per_object_matches_agree_with_pycocotools() -> None:
    gt, dets = make_dataset(16, n_images=30)
    ev = pycoco_eval(gt, dets)
    res = evaluate_coco(gt, dets)
    m = res.matches
    gt_index = {a["id"]: i for i, a in enumerate(gt["annotations"])}
    n_area, n_img = len(ev.params.areaRng), len(ev.params.imgIds)
    seen = 0
    for k in range(len(ev.params.catIds)):
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area "all"
            if e is None:
                continue
            for j, det_id in enumerate(e["dtIds"]):
                d = det_id - 1
                want = [gt_index[int(x)] if x > 0 else -1 for x in e["dtMatches"][:, j]]
                assert m.det_matched_gt[:, d].tolist() == want
                assert m.det_ignored[:, d].tolist() == e["dtIgnore"][:, j].astype(bool).tolist()
                seen += 1
            for j, gid in enumerate(e["gtIds"]):
                want_d = [int(x) - 1 if x > 0 else -1 for x in e["gtMatches"][:, j]]
                assert m.gt_matched_det[:, gt_index[gid]].tolist() == want_d
    assert seen == int(m.det_evaluated.sum())
    counts = res.image_counts(0)
    assert counts.tp.sum() == m.det_tp[0].sum()
    assert counts.fn.sum() == m.gt_fn[0].sum()
    tp_mask = m.det_tp_mask
    assert ((tp_mask & 1).astype(bool) == m.det_tp[0]).all()
    assert ((tp_mask >> 9 & 1).astype(bool) == m.det_tp[9]).all()
