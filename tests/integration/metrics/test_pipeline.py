"""The metrics pipeline on a real Postgres: rows -> object/row/row-class metrics -> per-class metrics.

Parity: per-class AP/AR from stored matches equal pycocotools on the same data (1e-9); per-row
metrics after a threshold change through SQL equal a fresh evaluation at those thresholds.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import domain, repository, service
from shared.metrics.rows import evaluate_rows
from tests.fixtures.metrics import SeededRun, coco_of_run, seed_run

pytestmark = pytest.mark.integration


def _compute_all(factory: sessionmaker[Session], run: SeededRun, chunk: int = 64) -> None:
    for rows in domain.chunks(run.row_ids, chunk):
        with factory.begin() as s:
            service.compute_rows(s, run.model_run_id, rows)
    with factory.begin() as s:
        service.aggregate_run(s, run.model_run_id)


@pytest.fixture(scope="module")
def run(db_url: str, factory: sessionmaker[Session]) -> SeededRun:
    r = seed_run(db_url, 300, seed=7, crowd_frac=0.03, empty_rows=6, confidence_threshold=0.3)
    _compute_all(factory, r)
    return r


def _pycoco(db_url: str, run: SeededRun) -> COCOeval:
    gt, dets = coco_of_run(db_url, run)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(dets)
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _class_rows(factory: sessionmaker[Session], run_id: int, split: str) -> dict[int, dict[str, object]]:
    with factory() as s:
        res = s.execute(
            text("SELECT * FROM class_metrics WHERE model_run_id = :r AND split = :s"),
            {"r": run_id, "s": split},
        )
        return {int(m["class_id"]): dict(m) for m in res.mappings()}


def test_class_ap_equals_pycocotools(db_url: str, factory: sessionmaker[Session], run: SeededRun) -> None:
    ev = _pycoco(db_url, run)
    stored = _class_rows(factory, run.model_run_id, "all")
    prec = ev.eval["precision"]  # (T, R, K, A, M)
    rec = ev.eval["recall"]  # (T, K, A, M)
    checked = 0
    for k, cid in enumerate(ev.params.catIds):
        row = stored[cid]
        for col, a, m, t in (
            ("ap", 0, 2, None),
            ("ap50", 0, 2, 0),
            ("ap75", 0, 2, 5),
            ("ap_small", 1, 2, None),
            ("ap_medium", 2, 2, None),
            ("ap_large", 3, 2, None),
        ):
            s = prec[:, :, k, a, m] if t is None else prec[t, :, k, a, m]
            want = float(np.mean(s[s > -1])) if (s > -1).any() else None
            got = row[col]
            if want is None:
                assert got is None, (cid, col)
            else:
                assert got == pytest.approx(want, abs=1e-9), (cid, col)
                checked += 1
        for col, m in (("ar1", 0), ("ar10", 1), ("ar100", 2)):
            s = rec[:, k, 0, m]
            want = float(np.mean(s[s > -1])) if (s > -1).any() else None
            assert (row[col] is None) == (want is None)
            if want is not None:
                assert row[col] == pytest.approx(want, abs=1e-9), (cid, col)
    assert checked >= 40
    summary = stored[0]
    for col, i in (
        ("ap", 0),
        ("ap50", 1),
        ("ap75", 2),
        ("ap_small", 3),
        ("ap_medium", 4),
        ("ap_large", 5),
        ("ar1", 6),
        ("ar10", 7),
        ("ar100", 8),
    ):
        assert summary[col] == pytest.approx(ev.stats[i], abs=1e-9), col


def test_every_row_and_object_is_stored_once(factory: sessionmaker[Session], run: SeededRun) -> None:
    with factory() as s:
        n_rows = s.execute(
            text("SELECT count(*), count(DISTINCT data_row_id) FROM row_metrics WHERE model_run_id = :r"),
            {"r": run.model_run_id},
        ).one()
        n_obj = s.execute(
            text("SELECT count(*) FROM object_matches WHERE model_run_id = :r"), {"r": run.model_run_id}
        ).scalar_one()
        n_src = s.execute(
            text(
                "SELECT (SELECT count(*) FROM predictions WHERE model_run_id = :r)"
                " + (SELECT count(*) FROM annotations WHERE data_row_id = ANY(:rows))"
            ),
            {"r": run.model_run_id, "rows": run.row_ids},
        ).scalar_one()
        empty = s.execute(
            text(
                "SELECT has_gt, has_pred, precision, recall, f1, lb_iou, mean_iou FROM row_metrics"
                " WHERE model_run_id = :r AND data_row_id = :d"
            ),
            {"r": run.model_run_id, "d": run.row_ids[-1]},
        ).one()
    assert n_rows == (len(run.row_ids), len(run.row_ids))
    assert n_obj == n_src
    assert tuple(empty) == (False, False, None, None, None, None, None)


def test_sql_threshold_change_equals_fresh_evaluation(
    db_url: str, factory: sessionmaker[Session], run: SeededRun
) -> None:
    k, conf = 5, 0.55  # IoU 0.75
    with factory() as s:
        got = repository.row_metrics_at(s, run.model_run_id, k, conf)
        batch = repository.load_batch(s, run.model_run_id, run.row_ids)
    fresh = evaluate_rows(batch, 0.75, conf)
    by_row = {int(r[0]): r for r in got if r[1] is None}
    by_rc = {(int(r[0]), int(r[1])): r for r in got if r[1] is not None}
    t = fresh.rows
    compared = 0
    for i, rid in enumerate(t.data_row_id.tolist()):
        if t.num_gt[i] == 0 and t.num_pred[i] == 0 and rid not in by_row:
            continue
        r = by_row[rid]
        assert tuple(int(v) for v in r[2:7]) == (t.num_gt[i], t.num_pred[i], t.tp[i], t.fp[i], t.fn[i]), rid
        for j, arr in zip(
            range(7, 13), (t.precision, t.recall, t.f1, t.mean_iou, t.min_conf, t.mean_conf), strict=True
        ):
            want = arr[i]
            assert (r[j] is None) == bool(np.isnan(want)), (rid, j)
            if r[j] is not None:
                assert r[j] == pytest.approx(want, abs=1e-12), (rid, j)
        compared += 1
    assert compared > 250
    rc = fresh.row_classes
    for i in range(len(rc.tp)):
        key = (int(rc.data_row_id[i]), int(rc.class_id[i]))  # type: ignore[index]
        if key not in by_rc:
            assert rc.num_gt[i] == 0 and rc.num_pred[i] == 0
            continue
        r = by_rc[key]
        assert tuple(int(v) for v in r[2:7]) == (rc.num_gt[i], rc.num_pred[i], rc.tp[i], rc.fp[i], rc.fn[i])


def test_threshold_change_rewrites_rows_by_sql(db_url: str, factory: sessionmaker[Session]) -> None:
    r = seed_run(db_url, 80, seed=11, confidence_threshold=0.3)
    _compute_all(factory, r)
    with factory.begin() as s:
        s.execute(
            text("UPDATE model_runs SET iou_threshold = 0.6, confidence_threshold = 0.5 WHERE id = :r"),
            {"r": r.model_run_id},
        )
    with factory.begin() as s:
        res = service.aggregate_run(s, r.model_run_id, thresholds_changed=True)
    assert res.rows_recomputed_by_sql
    assert sum(len(c) for c in res.rows_to_recompute) == 80
    with factory() as s:
        stored = s.execute(
            text(
                "SELECT data_row_id, tp, fp, fn FROM row_metrics WHERE model_run_id = :r ORDER BY data_row_id"
            ),
            {"r": r.model_run_id},
        ).all()
        batch = repository.load_batch(s, r.model_run_id, r.row_ids)
    fresh = evaluate_rows(batch, 0.6, 0.5).rows
    want = {
        int(d): (int(a), int(b), int(c))
        for d, a, b, c in zip(fresh.data_row_id, fresh.tp, fresh.fp, fresh.fn, strict=True)
    }
    assert {int(d): (tp, fp, fn) for d, tp, fp, fn in stored} == want
    # The full refresh of the same rows gives the same numbers (and updates statuses/TIDE/Labelbox).
    for rows in res.rows_to_recompute:
        with factory.begin() as s:
            service.compute_rows(s, r.model_run_id, rows)
    with factory() as s:
        again = s.execute(
            text(
                "SELECT data_row_id, tp, fp, fn FROM row_metrics WHERE model_run_id = :r ORDER BY data_row_id"
            ),
            {"r": r.model_run_id},
        ).all()
    assert again == stored


def test_compute_rows_twice_is_identical(factory: sessionmaker[Session], run: SeededRun) -> None:
    def snapshot() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with factory() as s:
            om = s.execute(
                text("SELECT * FROM object_matches WHERE model_run_id = :r ORDER BY kind, object_id"),
                {"r": run.model_run_id},
            ).all()
            rm = s.execute(
                text(
                    "SELECT * FROM row_class_metrics WHERE model_run_id = :r ORDER BY data_row_id, class_id"
                ),
                {"r": run.model_run_id},
            ).all()
        return [tuple(x) for x in om], [tuple(x) for x in rm]

    before = snapshot()
    rows = run.row_ids[10:90]
    with factory.begin() as s:
        service.compute_rows(s, run.model_run_id, rows)
    with factory.begin() as s:
        service.compute_rows(s, run.model_run_id, rows)
    assert snapshot() == before


def test_confusion_matrix_adds_up(factory: sessionmaker[Session], run: SeededRun) -> None:
    stored = _class_rows(factory, run.model_run_id, "all")
    with factory() as s:
        cells = s.execute(
            text(
                "SELECT gt_class_id, pred_class_id, count FROM confusion_cells"
                " WHERE model_run_id = :r AND split = 'all'"
            ),
            {"r": run.model_run_id},
        ).all()
    diag = {g: n for g, p, n in cells if g == p}
    pred_total: dict[int, int] = {}
    for _, p, n in cells:
        pred_total[p] = pred_total.get(p, 0) + n
    for cid in run.class_ids:
        if cid not in stored:
            continue
        assert diag.get(cid, 0) == stored[cid]["tp"]
        assert pred_total.get(cid, 0) == int(stored[cid]["tp"]) + int(stored[cid]["fp"])  # type: ignore[call-overload]
    assert any(g == 0 for g, _, _ in cells) and any(p == 0 for _, p, _ in cells)
