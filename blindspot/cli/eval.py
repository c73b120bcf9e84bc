"""``blindspot eval``: offline evaluation of detection files (no server needed).

``blindspot eval coco --gt GT.json --dets DETS.json --out OUT.json [--per-image]`` evaluates COCO
box detections with exact pycocotools numbers (report shape: ``shared.metrics.coco_report``). What it
does lives in ``blindspot.cli.eval_coco`` (typer-free, so ``blindspot.cli.main`` can run it first).
"""

from __future__ import annotations

from pathlib import Path

import typer

from blindspot.cli.eval_coco import BadFile, run_coco

app = typer.Typer(no_args_is_help=True, help="Evaluate detection files offline (COCO metrics).")


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
    try:
        code = run_coco(gt, dets, out, per_image=per_image, quiet=quiet)
    except BadFile as exc:
        raise typer.BadParameter(str(exc)) from exc
    if code:
        raise typer.Exit(code=code)
