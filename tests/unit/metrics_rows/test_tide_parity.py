"""TIDE error counts and dAP equal the ``tidecv`` reference (within 1e-4) on the same boxes."""

from __future__ import annotations

import numpy as np
import pytest
from tidecv import TIDE, Data
from tidecv.errors.main_errors import (
    BackgroundError,
    BoxError,
    ClassError,
    DuplicateError,
    MissedError,
    OtherError,
)

from shared.metrics.rows import RowBatch, evaluate_rows
from shared.metrics.tide import ERROR_CODES, tide_delta_ap
from tests.unit.metrics_rows.data import random_batch

TYPES = {
    "cls": ClassError,
    "loc": BoxError,
    "both": OtherError,
    "dupe": DuplicateError,
    "bkg": BackgroundError,
    "miss": MissedError,
}


def _tidecv(batch: RowBatch) -> tuple[TIDE, object]:
    gt, preds = Data("gt"), Data("preds")
    for r in batch.row_ids.tolist():
        gt.add_image(int(r), str(r))
    for i in np.argsort(batch.gt_id):
        gt.add_ground_truth(int(batch.gt_row[i]), int(batch.gt_cls[i]), batch.gt_box[i].tolist())
    for i in np.argsort(batch.pred_id):
        preds.add_detection(
            int(batch.pred_row[i]),
            int(batch.pred_cls[i]),
            float(batch.pred_score[i]),
            batch.pred_box[i].tolist(),
        )
    t = TIDE()
    t.evaluate(gt, preds, mode=TIDE.BOX)
    return t, t.runs["preds"]


def _ours(batch: RowBatch):  # type: ignore[no-untyped-def]
    o = evaluate_rows(batch, 0.5, 0.0).objects
    p, g = o.kind_is_pred, ~o.kind_is_pred
    codes = np.array([ERROR_CODES.get(e, 0) if e else 0 for e in o.tide_error], dtype=np.int8)
    incl = p & ((o.ign_mask & 1) == 0)
    return (
        o,
        tide_delta_ap(
            o.class_id[incl],
            o.confidence[incl],
            (o.tp_mask[incl] & 1) > 0,
            codes[incl],
            o.tide_fix_class[incl],
            o.class_id[g & ~o.iscrowd],
            np.array([e == "miss" for e in o.tide_error[g & ~o.iscrowd]], dtype=bool),
        ),
        codes,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_error_counts_and_dap_equal_tidecv(seed: int) -> None:
    batch = random_batch(np.random.default_rng(seed), 150, n_classes=4)
    t, run = _tidecv(batch)
    o, ours, codes = _ours(batch)
    # Error counts per type.
    want_counts = {name: len(run.error_dict[cls]) for name, cls in TYPES.items()}
    got_counts = {name: int(np.count_nonzero(codes == ERROR_CODES[name])) for name in TYPES}
    # A GT TIDE fixes through a cls/loc error is not "miss" in tidecv; ours gives it that error's type.
    got_counts["miss"] = sum(
        1 for e, k in zip(o.tide_error, o.kind_is_pred, strict=True) if e == "miss" and not k
    )
    got_counts = {
        n: (
            got_counts[n]
            if n == "miss"
            else int(np.count_nonzero((codes == ERROR_CODES[n]) & o.kind_is_pred))
        )
        for n in TYPES
    }
    assert got_counts == want_counts
    # Run-level dAP (tidecv reports AP x 100).
    main = t.get_main_errors()["preds"]
    short = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss"}
    for name in TYPES:
        assert ours.run[name] == pytest.approx(main[short[name]] / 100, abs=1e-4), name
    assert ours.map == pytest.approx(run.ap / 100, abs=1e-4)
    # Per-class dAP: tidecv's fixed AP data per class.
    for name, cls in TYPES.items():
        fixed = run.fix_errors(lambda e, c=cls: isinstance(e, c))
        for c, obj in run.ap_data.objs.items():
            want = fixed.objs[c].get_ap() / 100 - obj.get_ap() / 100
            assert ours.per_class[int(c)][name] == pytest.approx(want, abs=1e-4), (name, c)


def test_error_types_by_hand() -> None:
    """One row: a TP, a duplicate, a mislocalised box, a wrong class, a background box, a miss."""
    gt_box = np.array([[0, 0, 10, 10], [50, 50, 10, 10], [100, 0, 10, 10], [200, 200, 10, 10.0]])
    pred_box = np.array(
        [
            [0, 0, 10, 10],  # TP of GT 1
            [0.5, 0, 10, 10],  # duplicate of GT 1
            [53, 53, 10, 10],  # IoU 0.25 with GT 2: loc
            [100, 0, 10, 10],  # exact GT 3 box, other class: cls
            [400, 400, 5, 5],  # nothing near: bkg
        ]
    )
    batch = RowBatch(
        row_ids=np.array([1]),
        pred_id=np.arange(1, 6),
        pred_row=np.ones(5, np.int64),
        pred_cls=np.array([1, 1, 1, 2, 1]),
        pred_box=pred_box,
        pred_score=np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
        gt_id=np.arange(11, 15),
        gt_row=np.ones(4, np.int64),
        gt_cls=np.array([1, 1, 1, 1]),
        gt_box=gt_box,
        gt_area=gt_box[:, 2] * gt_box[:, 3],
        gt_crowd=np.zeros(4, bool),
    )
    ev = evaluate_rows(batch, 0.5, 0.0)
    o = ev.objects
    got = dict(zip(o.object_id.tolist(), o.error_type.tolist(), strict=True))
    assert [got[i] for i in range(1, 6)] == [None, "dupe", "loc", "cls", "bkg"]
    # GT 2 and 3 are targeted by loc / cls errors; GT 4 is missed.
    assert [got[i] for i in (11, 12, 13, 14)] == [None, "loc", "cls", "miss"]
    assert ev.rows.n_err["dupe"][0] == 1 and ev.rows.n_err["miss"][0] == 1
    assert (ev.rows.tp[0], ev.rows.fp[0], ev.rows.fn[0]) == (1, 4, 3)
    # The cls error pairs with GT 3 in the confusion matrix.
    status = dict(zip(o.object_id.tolist(), o.matched_object_id.tolist(), strict=True))
    assert status[4] == 13 and status[13] == 4 and status[5] == -1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_aps_in_one_pass_equal_tide_ap_per_class(seed: int) -> None:
    """tide_delta_ap's compiled per-class pass gives tide_ap's numbers bit for bit (ties in score,
    classes without GT or without points, fixed classes outside the class list)."""
    from shared.metrics.tide import _X_RANGE, _class_points, tide_ap

    rng = np.random.default_rng(seed)
    n = 3000
    classes = np.array([1, 2, 3, 5, 8], dtype=np.int64)
    point_cls = rng.choice(np.array([1, 2, 3, 5, 8, 42]), n)  # 42: not a class of the run
    keep = rng.random(n) < 0.8
    true = rng.random(n) < 0.4
    num_gt = np.array([300, 0, 120, 7, 0], dtype=np.int64)
    keep[point_cls == 8] = False  # a class with neither points nor GT
    pos = np.minimum(np.searchsorted(classes, point_cls), len(classes) - 1)
    index = np.where(classes[pos] == point_cls, pos, -1)
    points, counts = _class_points(index, keep, true, num_gt, _X_RANGE)
    for k, c in enumerate(classes.tolist()):
        sel = keep & (point_cls == c)
        assert counts[k] == np.count_nonzero(sel)
        assert float(points[k].sum() / len(_X_RANGE)) == tide_ap(true[sel], int(num_gt[k]))
