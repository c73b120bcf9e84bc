"""Per-row definitions, threshold masks and curves on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from shared.metrics.coco import COCO_IOU_THRESHOLDS, match_image_class
from shared.metrics.curves import NONE_CLASS, confusion_counts, f1_curve
from shared.metrics.rows import RowBatch, evaluate_rows, grid_index, prf
from tests.unit.metrics_rows.data import random_batch


def _nan_eq(a: float, b: float | None) -> bool:
    return (b is None and np.isnan(a)) or (b is not None and a == pytest.approx(b))


@pytest.mark.parametrize(
    "tp,fp,fn,want",
    [
        (0, 0, 0, (None, None, None)),  # no GT, no predictions
        (0, 3, 0, (0.0, None, 0.0)),  # predictions on an empty image
        (0, 0, 4, (None, 0.0, 0.0)),  # every GT missed, nothing predicted
        (2, 2, 0, (0.5, 1.0, 2 / 3)),
        (0, 2, 2, (0.0, 0.0, 0.0)),
        (3, 1, 1, (0.75, 0.75, 0.75)),
    ],
)
def test_prf_conventions(tp: int, fp: int, fn: int, want: tuple[float | None, ...]) -> None:
    p, r, f1 = prf(np.array([tp]), np.array([fp]), np.array([fn]))
    assert all(_nan_eq(v[0], w) for v, w in zip((p, r, f1), want, strict=True))


def test_grid_index() -> None:
    assert grid_index(0.5) == 0 and grid_index(0.75) == 5 and grid_index(0.95) == 9
    assert grid_index(0.6) == 2 and grid_index(0.62) is None


def test_masks_equal_per_image_class_coco_matching() -> None:
    """tp_mask bit k == match_image_class at threshold k, for every (row, class) of random data."""
    batch = random_batch(np.random.default_rng(4), 80, n_classes=3, crowd=0.1)
    o = evaluate_rows(batch, 0.5, 0.3).objects
    mask_of = {int(i): int(m) for i, m, k in zip(o.object_id, o.tp_mask, o.kind_is_pred, strict=True) if k}
    ign_of = {int(i): int(m) for i, m, k in zip(o.object_id, o.ign_mask, o.kind_is_pred, strict=True) if k}
    checked = 0
    for r in np.unique(batch.row_ids):
        for c in range(3):
            ps = np.nonzero((batch.pred_row == r) & (batch.pred_cls == c))[0]
            gs = np.nonzero((batch.gt_row == r) & (batch.gt_cls == c))[0]
            if not len(ps):
                continue
            ps = ps[np.argsort(batch.pred_id[ps])]
            m = match_image_class(
                batch.pred_box[ps],
                batch.pred_score[ps],
                batch.gt_box[gs],
                batch.gt_crowd[gs],
                batch.gt_area[gs],
                COCO_IOU_THRESHOLDS,
                max_dets=10_000,
            )
            for j, pi in enumerate(ps):
                want_tp = sum(1 << t for t in range(10) if m.tp[t, j])
                want_ign = sum(
                    1 << t for t in range(10) if m.det_matched_gt[t, j] >= 0 and m.det_ignored[t, j]
                )
                assert mask_of[int(batch.pred_id[pi])] == want_tp
                assert ign_of[int(batch.pred_id[pi])] == want_ign
                checked += 1
    assert checked > 100


def test_below_confidence_predictions_are_kept_but_not_counted() -> None:
    box = np.array([[10.0, 10, 20, 20]])
    batch = RowBatch(
        row_ids=np.array([7]),
        pred_id=np.array([1, 2]),
        pred_row=np.array([7, 7]),
        pred_cls=np.array([1, 1]),
        pred_box=np.vstack([box, box + 1]),
        pred_score=np.array([0.2, 0.9]),
        gt_id=np.array([5]),
        gt_row=np.array([7]),
        gt_cls=np.array([1]),
        gt_box=box,
        gt_area=np.array([400.0]),
        gt_crowd=np.array([False]),
    )
    ev = evaluate_rows(batch, 0.5, 0.5)
    assert (ev.rows.num_pred[0], ev.rows.tp[0], ev.rows.fp[0], ev.rows.fn[0]) == (1, 1, 0, 0)
    o = ev.objects
    low = int(np.nonzero(o.object_id == 1)[0][0])
    # The 0.2 prediction (exact box) is FP at IoU 0.5 (the 0.9 one, IoU 0.752, took the GT) but TP at
    # 0.80-0.95 where the 0.9 one fails: its mask keeps that for a lower confidence threshold later.
    assert o.status[low] == "FP" and o.error_type[low] is None
    assert o.tp_mask[low] == sum(1 << k for k in range(6, 10))
    assert ev.rows.min_conf[0] == pytest.approx(0.9)


def test_f1_curve_best_threshold() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    tp = np.array([True, True, False, True, False])
    curve = f1_curve(scores, tp, ~tp, num_gt=4)
    # Keeping >= 0.6: TP 3, FP 1, FN 1 -> F1 0.75, the best.
    assert curve.best_threshold == pytest.approx(0.6) and curve.best_f1 == pytest.approx(0.75)
    i = int(np.nonzero(np.isclose(curve.confidence, 0.85))[0][0])
    assert curve.f1[i] == pytest.approx(2 * 1 / (2 * 1 + 0 + 3))
    assert np.isnan(f1_curve(scores, tp, ~tp, num_gt=0).best_f1 or np.nan)


def test_confusion_counts_with_none() -> None:
    cells = confusion_counts(np.array([1, 1, 2, NONE_CLASS, 3]), np.array([1, 1, 1, 2, NONE_CLASS]))
    assert cells == {(1, 1): 2, (2, 1): 1, (NONE_CLASS, 2): 1, (3, NONE_CLASS): 1}


def _one_sided(n_pred: int, n_gt: int) -> RowBatch:
    box = np.array([[0.0, 0, 5, 5]])
    return RowBatch(
        row_ids=np.array([1, 2]),
        pred_id=np.arange(1, n_pred + 1),
        pred_row=np.ones(n_pred, np.int64),
        pred_cls=np.full(n_pred, 3),
        pred_box=np.repeat(box, n_pred, axis=0),
        pred_score=np.full(n_pred, 0.9),
        gt_id=np.arange(10, 10 + n_gt),
        gt_row=np.ones(n_gt, np.int64),
        gt_cls=np.full(n_gt, 3),
        gt_box=np.repeat(box + 40, n_gt, axis=0),
        gt_area=np.full(n_gt, 25.0),
        gt_crowd=np.zeros(n_gt, bool),
    )


def test_rows_with_only_gt_only_predictions_or_nothing() -> None:
    only_gt = evaluate_rows(_one_sided(0, 2), 0.5, 0.5)
    assert (only_gt.rows.fn[0], only_gt.rows.recall[0], only_gt.rows.f1[0]) == (2, 0.0, 0.0)
    assert np.isnan(only_gt.rows.precision[0]) and only_gt.rows.lb_fn[0] == 2 and only_gt.rows.lb_iou[0] == 0
    assert list(only_gt.objects.error_type) == ["miss", "miss"]
    only_pred = evaluate_rows(_one_sided(2, 0), 0.5, 0.5)
    assert (only_pred.rows.fp[0], only_pred.rows.precision[0], only_pred.rows.f1[0]) == (2, 0.0, 0.0)
    assert np.isnan(only_pred.rows.recall[0]) and list(only_pred.objects.error_type) == ["bkg", "bkg"]
    nothing = evaluate_rows(_one_sided(0, 0), 0.5, 0.5)
    for t in (only_gt, only_pred, nothing):  # row 2 has no objects at all
        r = t.rows
        assert np.isnan(
            [r.precision[1], r.recall[1], r.f1[1], r.mean_iou[1], r.lb_iou[1], r.min_conf[1]]
        ).all()
