"""The AOT-compiled kernels agree with the numba JIT ones; the JSON report writer agrees with orjson."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from blindspot.cli import app
from blindspot.cli.eval_coco import run_fast
from shared.metrics import coco_native as native
from shared.metrics.coco import evaluate_coco
from shared.metrics.coco_native import _checked, _load_aot, kernels
from shared.metrics.coco_report import coco_report, coco_report_json
from tests.unit.metrics_coco.cocogen import make_dataset


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_json_is_orjson_of_the_report(seed: int) -> None:
    gt, dets = make_dataset(seed, n_images=25)
    result = evaluate_coco(gt, dets)
    for per_image in (False, True):
        assert coco_report_json(result, per_image=per_image) == orjson.dumps(
            coco_report(result, per_image=per_image)
        )


def test_report_json_with_no_matches() -> None:
    gt, _ = make_dataset(3, n_images=5)
    result = evaluate_coco(gt, [])
    text = coco_report_json(result, per_image=True)
    assert text == orjson.dumps(coco_report(result, per_image=True))
    assert all(entry["matches"] == [] for entry in orjson.loads(text)["per_image"].values())


def test_aot_entry_points_reject_wrong_arrays() -> None:
    fn = _checked(lambda a, n: a.sum() + n, "f", [["<i8", 1, True], None])
    assert fn(np.arange(3, dtype=np.int64), 1) == 4
    with pytest.raises(TypeError, match="argument 0 must be <i8 ndim=1"):
        fn(np.arange(3, dtype=np.int32), 1)
    with pytest.raises(TypeError, match="argument 0"):
        fn(np.arange(6, dtype=np.int64)[::2], 1)  # not contiguous


def test_aot_kernels_equal_jit_kernels() -> None:
    aot = _load_aot()
    if aot is None:
        pytest.skip("AOT kernels not built for these sources (make coco-aot)")
    kernels.cache_clear()
    jit = kernels(aot=False)
    assert aot.aot and not jit.aot
    for seed in range(6):
        gt, dets = make_dataset(seed, n_images=30, score_decimals=1 if seed % 2 else None)
        a = evaluate_coco(gt, dets)  # default kernels(): AOT here
        text = orjson.dumps(dets)
        buf = np.frombuffer(text, dtype=np.uint8)
        pow10 = np.array([10.0**i for i in range(23)])
        for x, y in zip(aot.scan(buf, pow10), jit.scan(buf, pow10), strict=True):
            np.testing.assert_array_equal(x, y)
        f = a.flat
        args = (f.det_box, f.det_area, f.gt_box, f.gt_area, f.gt_crowd, f.det_start, f.det_end)
        args2 = (f.gt_start, f.gt_end, np.linspace(0.5, 0.95, 10), np.array([0.0, 0, 1024, 9216]))
        args3 = (np.array([1e10, 1024, 9216, 1e10]), 100)
        for x, y in zip(
            aot.match_groups_status(*args, *args2, *args3),
            jit.match_groups_status(*args, *args2, *args3),
            strict=True,
        ):
            np.testing.assert_array_equal(x, y)
        report_aot = coco_report_json(a, per_image=True)
        kernels.cache_clear()
        saved = native._load_aot
        native._load_aot = lambda: None
        try:
            b = evaluate_coco(gt, dets)
            report_jit = coco_report_json(b, per_image=True)
        finally:
            native._load_aot = saved
            kernels.cache_clear()
        assert report_aot == report_jit
        np.testing.assert_array_equal(a.precision, b.precision)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_fast_cli_path_writes_what_typer_writes(tmp_path: Path) -> None:
    gt, dets = make_dataset(5, n_images=20)
    g, d = tmp_path / "gt.json", tmp_path / "dets.json"
    g.write_bytes(orjson.dumps(gt))
    d.write_bytes(orjson.dumps(dets))
    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    assert run_fast(["--gt", str(g), f"--dets={d}", "--out", str(fast), "--per-image", "-q"]) == 0
    res = CliRunner().invoke(
        app, ["eval", "coco", "--gt", str(g), "--dets", str(d), "--out", str(slow), "--per-image", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert fast.read_bytes() == slow.read_bytes()


def test_fast_cli_path_leaves_help_errors_and_unknown_options_to_typer(tmp_path: Path) -> None:
    assert run_fast(["--help"]) is None
    assert run_fast(["--gt", "a.json", "--dets", "b.json"]) is None  # --out missing
    assert run_fast(["--gt", "a.json", "--dets", "b.json", "--out", "c.json", "--bogus"]) is None
    missing = tmp_path / "missing.json"
    assert run_fast(["--gt", str(missing), "--dets", str(missing), "--out", str(tmp_path / "o.json")]) is None


def test_counting_sort_order_equals_the_argsort_path() -> None:
    # coco_input uses order_detections (counting sort) unless the (category, image) grid is too sparse.
    rng = np.random.default_rng(7)
    for n, n_keys in ((2000, 50), (5000, 5000), (300, 7)):
        key = rng.integers(0, n_keys, n).astype(np.int64)
        keep = rng.random(n) < 0.9
        neg = -np.round(rng.random(n), 1)  # ties
        k = kernels()
        got = k.order_detections(key, keep, neg, n_keys)
        kept = np.flatnonzero(keep)
        want = kept[np.argsort(key[kept], kind="stable")]
        k.sort_runs_by_score(want, key, neg)
        np.testing.assert_array_equal(got, want)
        by_key_score = np.lexsort((neg, key))  # stable: ties keep input order
        np.testing.assert_array_equal(got, by_key_score[keep[by_key_score]])


@pytest.mark.parametrize("aot", [True, False])
def test_kernels_release_the_gil(aot: bool) -> None:
    """A kernel running in one thread leaves the GIL to the others (JIT: ``nogil=True``; AOT: built so).

    The main thread keeps running Python while another thread scans a ~50 MB result file: with the GIL
    held, it would stop for the whole scan.
    """
    import threading
    import time

    if aot and _load_aot() is None:
        pytest.skip("AOT kernels not built for these sources (make coco-aot)")
    k = native._load_aot() if aot else native._jit()
    assert k is not None and k.aot == aot
    one = b'{"image_id":1,"category_id":2,"bbox":[1.5,2,30.25,40],"score":0.875}'
    buf = np.frombuffer(b"[" + b",".join([one] * 700_000) + b"]", dtype=np.uint8)
    pow10 = np.array([10.0**i for i in range(23)])
    k.scan(buf[:1000].copy(), pow10)  # compiled / loaded before timing
    go, spans = threading.Event(), []

    def run() -> None:
        go.wait()
        t0 = time.perf_counter()
        assert k.scan(buf, pow10)[1] == 700_000
        spans.append(time.perf_counter() - t0)

    worker = threading.Thread(target=run)
    worker.start()
    last, longest = time.perf_counter(), 0.0
    go.set()  # this thread is spinning (not waiting, which would hide the stop) when the scan starts
    while worker.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert spans and spans[0] > 0.02, spans  # long enough to tell the two apart
    assert longest < spans[0] / 2, (longest, spans[0])


@pytest.mark.parametrize("seed", [4, 5])
def test_matching_split_over_two_threads_equals_one_pass(seed: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shared.metrics.coco_input import flatten_coco
    from shared.metrics.coco_result import match_flat

    gt, dets = make_dataset(seed, n_images=40, many_dets_images=4)
    flat = flatten_coco(gt, dets)
    one = match_flat(flat)
    with ThreadPoolExecutor(max_workers=1) as pool:
        two = match_flat(flat, pool=pool, min_split=0)
        assert match_flat(flat, pool=pool) is not None  # below min_split: one pass
    assert len(one) == len(two) == 8
    for a, b in zip(one, two, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
