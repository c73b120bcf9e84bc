"""Match digests (migration metrics05): the aggregation's input packed per row task.

Checked on a real Postgres: the digests read back equal, field by field, what load_matches reads from
``object_matches``; after row sets are recomputed in other cuts (overlapping old digests), each row is
still described once and by its latest computation; the per-class metrics from the digests equal those
from ``object_matches``; and digests that do not cover the run's rows exactly are not used.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import domain, repository, service
from tests.fixtures.metrics import SeededRun, seed_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(db_url: str) -> SeededRun:
    return seed_run(db_url, 180, seed=23, crowd_frac=0.05, empty_rows=5)


def _compute(factory: sessionmaker[Session], run_id: int, rows: list[int], chunk: int) -> None:
    for part in domain.chunks(rows, chunk):
        with factory.begin() as s:
            service.compute_rows(s, run_id, part)


def _canonical(m: repository.StoredMatches) -> dict[str, Any]:
    """Every array of StoredMatches, predictions ordered by id and GT by (row, class, area)."""
    p = np.argsort(m.p_id, kind="stable")
    g = np.lexsort((m.g_area, m.g_cls, m.g_row))
    out: dict[str, Any] = {}
    for f in fields(m):
        a = getattr(m, f.name)
        out[f.name] = (a[p] if f.name.startswith("p_") else a[g]).tolist()
    return out


def _both(factory: sessionmaker[Session], run_id: int) -> tuple[Any, Any]:
    with factory() as s:
        digest = repository.load_digest_matches(s, run_id)
        stored = repository.load_matches(s, run_id)
    return digest, stored


def _digest_rows(factory: sessionmaker[Session], run_id: int) -> list[int]:
    with factory() as s:
        blobs = s.execute(
            text("SELECT row_ids FROM match_digests WHERE model_run_id = :r"), {"r": run_id}
        ).scalars()
        return sorted(int(x) for b in blobs for x in np.frombuffer(b, dtype="<i8"))


def _class_metrics(factory: sessionmaker[Session], run_id: int) -> list[tuple[Any, ...]]:
    with factory.begin() as s:
        service.aggregate_run(s, run_id)
    with factory() as s:
        return [
            tuple(r)
            for r in s.execute(
                text(
                    "SELECT split, class_id, num_gt, num_pred, tp, fp, fn, precision, recall, f1, ap, ap50, ap75,"
                    " ap_small, ap_medium, ap_large, ar1, ar10, ar100, best_conf_threshold, best_f1,"
                    " pr_curve, f1_curve, tide FROM class_metrics WHERE model_run_id = :r ORDER BY split, class_id"
                ),
                {"r": run_id},
            )
        ]


def test_digests_equal_the_stored_matches_through_recomputes_and_give_the_same_class_metrics(
    factory: sessionmaker[Session], run: SeededRun, db_url: str
) -> None:
    rows = run.row_ids
    _compute(factory, run.model_run_id, rows, 50)
    digest, stored = _both(factory, run.model_run_id)
    assert digest is not None
    assert _canonical(digest) == _canonical(stored)
    assert _digest_rows(factory, run.model_run_id) == sorted(rows)

    # Recompute in other cuts, overlapping the first digests (and one row set outside the run).
    _compute(factory, run.model_run_id, rows[25:140], 40)
    _compute(factory, run.model_run_id, [*rows[130:150], 10**12], 7)
    assert _digest_rows(factory, run.model_run_id) == sorted(rows)
    digest, stored = _both(factory, run.model_run_id)
    assert digest is not None
    assert _canonical(digest) == _canonical(stored)

    from_digests = _class_metrics(factory, run.model_run_id)
    with factory.begin() as s:
        s.execute(text("DELETE FROM match_digests WHERE model_run_id = :r"), {"r": run.model_run_id})
    with factory() as s:
        assert repository.load_digest_matches(s, run.model_run_id) is None
    assert _class_metrics(factory, run.model_run_id) == from_digests
    # Computing again restores them.
    _compute(factory, run.model_run_id, rows, 60)
    assert _digest_rows(factory, run.model_run_id) == sorted(rows)


def test_digests_that_do_not_cover_the_run_exactly_are_not_used(
    factory: sessionmaker[Session], run: SeededRun
) -> None:
    rows = run.row_ids
    _compute(factory, run.model_run_id, rows, 60)
    with factory() as s:
        assert repository.load_digest_matches(s, run.model_run_id) is not None
    # A row's results gone without its digest knowing (e.g. deleted by hand): not used.
    part = f"row_metrics_r{run.model_run_id}"
    with factory.begin() as s:
        s.execute(text(f"DELETE FROM {part} WHERE data_row_id = :d"), {"d": rows[3]})
    with factory() as s:
        assert repository.load_digest_matches(s, run.model_run_id) is None
    _compute(factory, run.model_run_id, rows[:60], 60)
    with factory() as s:
        assert repository.load_digest_matches(s, run.model_run_id) is not None
    # The same rows described twice: not used.
    with factory.begin() as s:
        s.execute(
            text(
                "INSERT INTO match_digests (model_run_id, first_row, last_row, row_ids, preds, gts)"
                " SELECT model_run_id, -1, last_row, row_ids, preds, gts FROM match_digests"
                " WHERE model_run_id = :r ORDER BY first_row LIMIT 1"
            ),
            {"r": run.model_run_id},
        )
    with factory() as s:
        assert repository.load_digest_matches(s, run.model_run_id) is None
