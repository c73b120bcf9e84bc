"""The Labelbox family equals labelbox-python's own metrics on the same boxes."""

from __future__ import annotations

import numpy as np
import pytest
from labelbox.data.annotation_types import ObjectAnnotation, Point, Rectangle
from labelbox.data.metrics.confusion_matrix.calculation import confusion_matrix, feature_confusion_matrix
from labelbox.data.metrics.iou.calculation import feature_miou, miou

from shared.metrics.rows import RowBatch, evaluate_rows


def _ann(cls: int, box: np.ndarray) -> ObjectAnnotation:
    x, y, w, h = (float(v) for v in box)
    return ObjectAnnotation(name=f"c{cls}", value=Rectangle(start=Point(x=x, y=y), end=Point(x=x + w, y=y + h)))


def _random_batch(rng: np.random.Generator, n_rows: int) -> RowBatch:
    gts, preds = [], []
    gid = pid = 0
    for r in range(n_rows):
        n_g = int(rng.integers(0, 6))
        n_p = int(rng.integers(0, 8))
        if r % 11 == 0:
            n_g, n_p = 0, 0
        g_boxes = np.column_stack([rng.uniform(0, 100, (n_g, 2)), rng.uniform(5, 40, (n_g, 2))])
        for b in g_boxes:
            gid += 1
            gts.append((gid, r, int(rng.integers(0, 3)), b))
        for _ in range(n_p):
            pid += 1
            if n_g and rng.random() < 0.7:
                b = g_boxes[int(rng.integers(0, n_g))] + rng.normal(0, 3, 4)
                b[2:] = np.abs(b[2:]) + 1
            else:
                b = np.concatenate([rng.uniform(0, 100, 2), rng.uniform(5, 40, 2)])
            preds.append((pid, r, int(rng.integers(0, 3)), b, float(rng.random())))

    def col(rows: list[tuple[object, ...]], i: int, dtype: type) -> np.ndarray:
        return np.array([t[i] for t in rows], dtype=dtype)

    return RowBatch(
        row_ids=np.arange(n_rows, dtype=np.int64),
        pred_id=col(preds, 0, np.int64), pred_row=col(preds, 1, np.int64), pred_cls=col(preds, 2, np.int64),
        pred_box=np.array([t[3] for t in preds]).reshape(-1, 4), pred_score=col(preds, 4, np.float64),
        gt_id=col(gts, 0, np.int64), gt_row=col(gts, 1, np.int64), gt_cls=col(gts, 2, np.int64),
        gt_box=np.array([t[3] for t in gts]).reshape(-1, 4),
        gt_area=np.array([t[3][2] * t[3][3] for t in gts], dtype=np.float64),
        gt_crowd=np.zeros(len(gts), dtype=bool),
    )


@pytest.mark.parametrize("iou,conf", [(0.5, 0.0), (0.3, 0.4), (0.75, 0.2)])
def test_row_and_class_metrics_equal_labelbox(iou: float, conf: float) -> None:
    rng = np.random.default_rng(int(iou * 100 + conf * 10))
    batch = _random_batch(rng, 60)
    ev = evaluate_rows(batch, iou, conf)
    keep = batch.pred_score >= conf
    checked = 0
    for i, r in enumerate(ev.rows.data_row_id.tolist()):
        g_sel = np.nonzero(batch.gt_row == r)[0]
        p_sel = np.nonzero((batch.pred_row == r) & keep)[0]
        gts = [_ann(int(batch.gt_cls[j]), batch.gt_box[j]) for j in g_sel]
        preds = [_ann(int(batch.pred_cls[j]), batch.pred_box[j]) for j in p_sel]
        want_cm = confusion_matrix(gts, preds, include_subclasses=False, iou=iou)
        want_iou = miou(gts, preds, include_subclasses=False)
        if want_cm is None:
            assert np.isnan(ev.rows.lb_iou[i]) and np.isnan(ev.rows.lb_tp[i])
            continue
        tp, fp, _, fn = want_cm
        assert (ev.rows.lb_tp[i], ev.rows.lb_fp[i], ev.rows.lb_fn[i]) == (tp, fp, fn), r
        assert ev.rows.lb_iou[i] == pytest.approx(float(want_iou), abs=1e-6), r  # shapely overlay vs closed form: ~1e-9
        checked += 1
    assert checked > 40
    # Per class inside the row.
    rc = ev.row_classes
    assert rc.class_id is not None
    for i in range(len(rc.tp)):
        r, c = int(rc.data_row_id[i]), int(rc.class_id[i])
        g_sel = np.nonzero((batch.gt_row == r) & (batch.gt_cls == c))[0]
        p_sel = np.nonzero((batch.pred_row == r) & (batch.pred_cls == c) & keep)[0]
        gts = [_ann(c, batch.gt_box[j]) for j in g_sel]
        preds = [_ann(c, batch.pred_box[j]) for j in p_sel]
        want = feature_confusion_matrix(gts, preds, include_subclasses=False, iou=iou)
        if want is None:
            assert np.isnan(rc.lb_tp[i])
            continue
        assert (rc.lb_tp[i], rc.lb_fp[i], rc.lb_fn[i]) == (want[0], want[1], want[3])
        # labelbox passes predictions first to feature_miou (see labelbox/data/metrics/iou/calculation.py).
        assert rc.lb_iou[i] == pytest.approx(float(feature_miou(preds, gts, False)), abs=1e-6)
