"""The Labelbox family equals labelbox-python's own metrics on the same boxes."""

from __future__ import annotations

import numpy as np
import pytest
from labelbox.data.annotation_types import ObjectAnnotation, Point, Rectangle
from labelbox.data.metrics.confusion_matrix.calculation import confusion_matrix, feature_confusion_matrix
from labelbox.data.metrics.iou.calculation import feature_miou, miou

from shared.metrics.rows import evaluate_rows
from tests.unit.metrics_rows.data import random_batch


def _ann(cls: int, box: np.ndarray) -> ObjectAnnotation:
    x, y, w, h = (float(v) for v in box)
    return ObjectAnnotation(
        name=f"c{cls}", value=Rectangle(start=Point(x=x, y=y), end=Point(x=x + w, y=y + h))
    )


@pytest.mark.parametrize("iou,conf", [(0.5, 0.0), (0.3, 0.4), (0.75, 0.2)])
def test_row_and_class_metrics_equal_labelbox(iou: float, conf: float) -> None:
    rng = np.random.default_rng(int(iou * 100 + conf * 10))
    batch = random_batch(rng, 60)
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
        assert ev.rows.lb_iou[i] == pytest.approx(float(want_iou), abs=1e-6), (
            r
        )  # shapely overlay vs closed form: ~1e-9
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
