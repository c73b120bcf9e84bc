"""``blindspot eval``: offline evaluation of detection files (no server needed).

``blindspot eval coco --gt GT.json --dets DETS.json --out OUT.json [--per-image]`` evaluates COCO
box detections with exact pycocotools numbers (report shape: ``shared.metrics.coco_report``).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import orjson
import typer

app = typer.Typer(no_args_is_help=True, help="Evaluate detection files offline (COCO metrics).")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {what} file {path}: {exc.strerror}") from exc


def _parse(data: bytes, path: Path, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} file {path} is not valid JSON: {exc}") from exc


@app.command("coco")
def coco(
    gt: Path = typer.Option(..., "--gt", help="COCO ground truth JSON (images, annotations, categories)."),
    dets: Path = typer.Option(
        ..., "--dets", help="COCO results JSON: a list of {image_id, category_id, bbox, score}."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the JSON report."),
    per_image: bool = typer.Option(
        False, "--per-image", help="Add per-image TP/FP/FN (IoU 0.5) per category and the matches."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the summary."),
) -> None:
    """Evaluate DETS against GT like pycocotools COCOeval (bbox) and write OUT."""
    # Large object graphs (JSON in, report out) and nothing cyclic to free: the cyclic GC only
    # costs time here (~30% of building the report). Restored afterwards (in-process callers).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _coco(gt, dets, out, per_image=per_image, quiet=quiet)
    finally:
        if was_enabled:
            gc.enable()


def _coco(gt: Path, dets: Path, out: Path, *, per_image: bool, quiet: bool) -> None:
    from shared.errors import InvalidInput
    from shared.metrics.coco import evaluate_coco, parse_results
    from shared.metrics.coco_report import coco_report

    started = time.perf_counter()
    gt_data = _parse(_read(gt, "ground truth"), gt, "ground truth")
    det_bytes = _read(dets, "detections")
    # Fast path: a plain result list straight to columns; anything else through orjson.
    det_data: Any = parse_results(det_bytes)
    if det_data is None:
        det_data = _parse(det_bytes, dets, "detections")
        if isinstance(det_data, dict) and isinstance(det_data.get("annotations"), list):
            det_data = det_data["annotations"]
    try:
        result = evaluate_coco(gt_data, det_data)
    except InvalidInput as exc:
        context = f" {exc.context}" if exc.context else ""
        typer.echo(f"error: {exc.detail}{context}", err=True)
        raise typer.Exit(code=2) from exc
    report = coco_report(result, per_image=per_image)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS))
    if not quiet:
        for key, value in report.items():
            if isinstance(value, float):
                typer.echo(f"{key:<10} {value:.4f}")
        elapsed = time.perf_counter() - started
        typer.echo(f"wrote {out} ({elapsed:.2f}s)", err=True)
