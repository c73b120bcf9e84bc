"""Inference worker death and duplicate delivery (issue 10, items 1-2): nothing lost, nothing doubled.

A real ``celery -A services.inference.worker:app worker -Q inference`` subprocess (ONNX Runtime
in-process, the demo detector) reads images from the real SeaweedFS and writes predictions to Postgres,
through Redis DB 15 with a key prefix of its own and the short ``visibility_timeout`` /
``unacked_restore_interval`` of ``settings.celery``. The reference is the same chunks run once in-process.

* kill -9 (main process and pool child) 3 times while the worker holds a task, restart it each time:
  afterwards the run's predictions equal the reference (0 rows lost, 0 predictions duplicated).
  ``benchmarks/reliability_worker_death.py`` does the same with 20 kills.
* every ``inference.run`` delivered twice, to a worker running two tasks at once: same predictions.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from shared.adapters.storage import ObjectStore
from shared.settings import REPO_ROOT, S3Settings
from tests.integration.reliability import inference_chaos as chaos

pytestmark = [pytest.mark.integration]

MODEL = REPO_ROOT / "deploy" / "triton" / "models" / "yolov8_demo" / "1" / "model.onnx"
N_IMAGES = 24


@pytest.fixture(scope="module")
def scenes(
    db_url: str, object_store: ObjectStore, s3_settings: S3Settings
) -> tuple[chaos.Seeded, list[chaos.Prediction]]:
    if not MODEL.is_file():
        pytest.skip(f"demo detector not exported yet: {MODEL}")
    seeded = chaos.seed_images(db_url, object_store, N_IMAGES)
    ref_run = chaos.new_run(db_url, seeded.workspace_id, "reference")
    want = chaos.reference(db_url, s3_settings, ref_run, seeded.row_ids)
    assert len(want) > N_IMAGES  # several detections per scene: the comparison has teeth
    assert len({p[0] for p in want}) >= N_IMAGES // 2
    return seeded, want


def _assert_same(got: list[chaos.Prediction], want: list[chaos.Prediction], rows: list[int]) -> None:
    dupes = [p for p, n in Counter(got).items() if n > 1]
    assert not dupes, f"{len(dupes)} predictions duplicated, e.g. {dupes[:3]}"
    lost_rows = sorted({p[0] for p in want} - {p[0] for p in got})
    assert not lost_rows, f"rows lost: {lost_rows}"
    assert len(got) == len(want)
    assert [p[1:] for p in got] == [p[1:] for p in want]
    assert [p[0] for p in got] == [p[0] for p in want]
    assert {p[0] for p in got} <= set(rows)


@pytest.mark.slow
def test_kill9_mid_run_loses_and_duplicates_nothing(
    db_url: str,
    s3_settings: S3Settings,
    scenes: tuple[chaos.Seeded, list[chaos.Prediction]],
    tmp_path: Path,
) -> None:
    seeded, want = scenes
    run = chaos.new_run(db_url, seeded.workspace_id, "kill9")
    result = chaos.chaos_round(
        db_url, s3_settings, run, seeded.row_ids, kills=3, rnd=random.Random(10), log=tmp_path / "worker.log"
    )
    assert result.kills == 3
    assert result.kills_holding_a_task >= 1, (tmp_path / "worker.log").read_text()[-2000:]
    assert chaos.run_row_count(db_url, run) == N_IMAGES
    _assert_same(chaos.predictions(db_url, run), want, seeded.row_ids)


def test_duplicate_delivery_gives_identical_predictions(
    db_url: str,
    s3_settings: S3Settings,
    scenes: tuple[chaos.Seeded, list[chaos.Prediction]],
    tmp_path: Path,
) -> None:
    seeded, want = scenes
    run = chaos.new_run(db_url, seeded.workspace_id, "twice")
    result = chaos.chaos_round(
        db_url,
        s3_settings,
        run,
        seeded.row_ids,
        kills=0,
        copies=2,
        concurrency=2,
        rnd=random.Random(0),
        log=tmp_path / "worker.log",
    )
    assert result.tasks_sent == 2 * len(chaos.chunks(seeded.row_ids, chaos.INFERENCE.task_rows))
    _assert_same(chaos.predictions(db_url, run), want, seeded.row_ids)
