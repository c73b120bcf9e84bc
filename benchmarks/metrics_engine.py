"""COCO engine benchmark: `blindspot eval coco --per-image` against pycocotools, faster-coco-eval, hotcoco.

Generates a COCO-like dataset (default 500 images; the issue's size is ``--images 5000``, ~100
detections per image), writes GT/detection JSON to a temp dir, then times each evaluator as a whole
command in a fresh subprocess (interpreter start-up and JSON loading included; bytecode cached) on the
same files, round-robin (one run of every tool per round), prints each tool's best wall and CPU seconds
and ratios against ours, and checks that every evaluator reports the same 12 numbers. Ours runs the
AOT-compiled kernels (built first when missing, see shared/metrics/coco_native.py); the "numba JIT" row
is the same engine without them.

    .venv/bin/python benchmarks/metrics_engine.py                 # quick
    .venv/bin/python benchmarks/metrics_engine.py --images 5000 --repeat 3 --skip pycocotools
    .venv/bin/python benchmarks/metrics_engine.py --images 5000   # the issue's size, with pycocotools
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Each reference evaluator as a script: argv = gt, dets, stats-out.
_PYCOCO = """
import json, sys, contextlib, io
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in ev.stats], open(sys.argv[3], "w"))
"""
_FASTER = """
import json, sys, contextlib, io
from faster_coco_eval import COCO, COCOeval_faster
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    ev = COCOeval_faster(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in ev.stats[:12]], open(sys.argv[3], "w"))
"""
_HOTCOCO = """
import json, sys, contextlib, io
from hotcoco import COCO, COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.load_res(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox"); ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in list(ev.stats)[:12]], open(sys.argv[3], "w"))
"""
# The same pipeline as `blindspot eval coco --per-image` without the CLI: what the engine itself
# costs; with argv[4] == "jit" it ignores the AOT build (shared/metrics/coco_native.py): numba's JIT.
_ENGINE = """
import gc, sys, orjson
gc.disable()
if sys.argv[4] == "jit":
    from shared.metrics import coco_native
    coco_native._load_aot = lambda: None
from shared.metrics.coco import evaluate_coco, parse_results
from shared.metrics.coco_report import coco_report_json
gt = orjson.loads(open(sys.argv[1], "rb").read())
raw = open(sys.argv[2], "rb").read()
dets = parse_results(raw)
dets = orjson.loads(raw) if dets is None else dets
open(sys.argv[3], "wb").write(coco_report_json(evaluate_coco(gt, dets), per_image=True))
"""
KEYS = ["mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"]
KEYS += ["AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def generate(
    n_images: int, dets_per_image: int, n_classes: int, gt_per_image: float, seed: int
) -> tuple[dict, list]:
    """COCO-like data: log-uniform box sizes, 1% crowd, jittered true positives, background FPs."""
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(gt_per_image, n_images)
    img_of_gt = np.repeat(np.arange(n_images), n_gt)
    total_gt = int(n_gt.sum())
    side = np.exp(rng.uniform(np.log(4), np.log(400), (total_gt, 2)))
    xy = rng.uniform(0, 640 - side.clip(max=600))
    gt_box = np.hstack([xy, side])
    gt_cat = rng.integers(1, n_classes + 1, total_gt)
    crowd = rng.random(total_gt) < 0.01
    area = side[:, 0] * side[:, 1] * rng.uniform(0.5, 1.0, total_gt)
    # Detections: 0-3 jittered copies per GT, then background boxes up to dets_per_image per image.
    copies = rng.integers(0, 4, total_gt)
    src = np.repeat(np.arange(total_gt), copies)
    jit = rng.normal(0, 1, (len(src), 4)) * (0.1 * gt_box[src, 2:4]).repeat(2, axis=1)
    tp_box = gt_box[src] + jit
    tp_box[:, 2:] = np.maximum(tp_box[:, 2:], 1.0)
    tp_cat = np.where(rng.random(len(src)) < 0.9, gt_cat[src], rng.integers(1, n_classes + 1, len(src)))
    tp_img = img_of_gt[src]
    per_img_tp = np.bincount(tp_img, minlength=n_images)
    n_bg = np.maximum(dets_per_image - per_img_tp, 0)
    bg_img = np.repeat(np.arange(n_images), n_bg)
    bg_side = np.exp(rng.uniform(np.log(4), np.log(300), (len(bg_img), 2)))
    bg_box = np.hstack([rng.uniform(0, 640 - bg_side), bg_side])
    bg_cat = rng.integers(1, n_classes + 1, len(bg_img))
    det_img = np.concatenate([tp_img, bg_img])
    det_box = np.vstack([tp_box, bg_box]).round(2)
    det_cat = np.concatenate([tp_cat, bg_cat])
    score = np.concatenate([rng.beta(5, 2, len(tp_img)), rng.beta(2, 5, len(bg_img))]).round(3)
    order = np.lexsort((rng.random(len(det_img)), det_img))
    images = [
        {"id": i + 1, "width": 640, "height": 640, "file_name": f"{i + 1}.jpg"} for i in range(n_images)
    ]
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)]
    anns = [
        {"id": i + 1, "image_id": im + 1, "category_id": c, "bbox": b, "area": a, "iscrowd": int(cr)}
        for i, (im, c, b, a, cr) in enumerate(
            zip(
                img_of_gt.tolist(),
                gt_cat.tolist(),
                gt_box.round(2).tolist(),
                area.tolist(),
                crowd.tolist(),
                strict=True,
            )
        )
    ]
    dets = [
        {"image_id": im + 1, "category_id": c, "bbox": b, "score": s}
        for im, c, b, s in zip(
            det_img[order].tolist(),
            det_cat[order].tolist(),
            det_box[order].tolist(),
            score[order].tolist(),
            strict=True,
        )
    ]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _env(pycache: str) -> dict[str, str]:
    """Bytecode caching on (in a private prefix), like an installed environment: without it each run
    recompiles every imported module from source, which would time Python, not the evaluators."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["PYTHONPATH"] = str(ROOT)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def ensure_aot() -> str:
    """Build the AOT kernels when missing (``make coco-aot``; not timed, like the references' own
    compiled extensions); says which kernels ``blindspot eval coco`` runs."""
    from shared.metrics.coco_native import _load_aot, build_aot

    if _load_aot() is None:
        t0 = time.perf_counter()
        try:
            build_aot()
        except Exception as exc:  # no compiler / setuptools: the CLI falls back to the JIT
            return f"numba JIT (AOT build failed: {exc})"
        return f"AOT-compiled (built now, {time.perf_counter() - t0:.0f}s)"
    return "AOT-compiled"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--gt-per-image", type=float, default=7.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds after the warm-up; each tool's best is reported"
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["pycocotools", "faster-coco-eval", "hotcoco"])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_coco_") as tmp:
        t0 = time.perf_counter()
        gt, dets = generate(args.images, args.dets_per_image, args.classes, args.gt_per_image, args.seed)
        gt_path, det_path = Path(tmp, "gt.json"), Path(tmp, "dets.json")
        gt_path.write_bytes(orjson.dumps(gt))
        det_path.write_bytes(orjson.dumps(dets))
        print(
            f"dataset: {args.images} images, {len(gt['annotations'])} GT, {len(dets)} detections, "
            f"{args.classes} classes ({det_path.stat().st_size / 1e6:.0f} MB dets; {time.perf_counter() - t0:.1f}s)"
        )
        del gt, dets
        env = _env(str(Path(tmp, "pycache")))
        print(f"kernels: {ensure_aot()}")
        ours_out, plain_out, engine_out = (
            Path(tmp, "ours.json"),
            Path(tmp, "plain.json"),
            Path(tmp, "engine.json"),
        )
        ours_cmd = [str(BIN / "blindspot"), "eval", "coco", "--gt", str(gt_path), "--dets", str(det_path)]
        ours_cmd += ["--out", str(ours_out), "--per-image", "-q"]
        engine = [sys.executable, "-c", _ENGINE, str(gt_path), str(det_path), str(engine_out)]
        # (label, command, output file, reads stats from a report): each run is read right after it.
        tools: list[tuple[str, list[str], Path, bool]] = [
            ("blindspot eval coco", ours_cmd, ours_out, True),
            ("  without --per-image", [*ours_cmd[:-3], str(plain_out), "-q"], plain_out, True),
            ("  engine alone", [*engine, "aot"], engine_out, True),
            ("  engine, numba JIT", [*engine, "jit"], engine_out, True),
        ]
        for name, script in (("pycocotools", _PYCOCO), ("faster-coco-eval", _FASTER), ("hotcoco", _HOTCOCO)):
            if name not in args.skip:
                out = Path(tmp, f"{name}.json")
                tools.append(
                    (name, [sys.executable, "-c", script, str(gt_path), str(det_path), str(out)], out, False)
                )
        cli_cmd = [sys.executable, "-c", "import blindspot.cli"]
        stats: dict[str, list[float]] = {}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in tools}
        samples["cli"] = []
        # Round-robin: every tool runs once per round (the first round is the warm-up: bytecode,
        # numba caches, file cache), so a load change on this shared machine hits all of them alike.
        for rnd in range(args.repeat + 1):
            for name, cmd, out, is_report in tools:
                sample = timed(cmd, env)
                if rnd:
                    samples[name].append(sample)
                rows = orjson.loads(out.read_bytes())
                stats[name] = [rows[k] for k in KEYS] if is_report else rows
            if rnd:
                samples["cli"].append(timed(cli_cmd, env))
        runs = {name: (min(w for w, _ in xs), min(c for _, c in xs)) for name, xs in samples.items()}
        cli_import = runs.pop("cli")

    ours_wall, ours_cpu = runs["blindspot eval coco"]
    print(
        f"\nwhole commands, best of {args.repeat} round-robin rounds after a warm-up; CPU = user + sys of the process"
    )
    print(f"{'tool':<22}{'wall s':>8}{'x ours':>8}{'CPU s':>8}{'x ours':>8}   numbers vs blindspot")
    for name, (wall, cpu) in runs.items():
        diff = float(np.max(np.abs(np.array(stats[name]) - np.array(stats["blindspot eval coco"]))))
        same = "identical" if diff == 0 else f"max |diff| {diff:.2e}"
        if name == "blindspot eval coco":
            same = "(COCO + per-class + per-image + per-object)"
        print(f"{name:<22}{wall:>8.2f}{wall / ours_wall:>8.2f}{cpu:>8.2f}{cpu / ours_cpu:>8.2f}   {same}")
    print(
        f"{'  import blindspot.cli':<22}{cli_import[0]:>8.2f}{'':>8}{cli_import[1]:>8.2f}   (start-up of the CLI package)"
    )
    refs = {n: r for n, r in runs.items() if n in ("pycocotools", "faster-coco-eval", "hotcoco")}
    if refs:
        name, (wall, cpu) = min(refs.items(), key=lambda kv: kv[1][0])
        print(
            f"\nfastest reference: {name} {wall:.2f}s wall / {cpu:.2f}s CPU; blindspot eval coco: "
            f"{ours_wall:.2f}s / {ours_cpu:.2f}s -> {wall / ours_wall:.2f}x / {cpu / ours_cpu:.2f}x its speed"
        )
    for k, v in zip(KEYS, stats["blindspot eval coco"], strict=True):
        print(f"  {k:<10} {v:.6f}")


if __name__ == "__main__":
    main()
