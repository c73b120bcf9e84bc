"""Model runs, their gallery and metrics drill-down (``blindspot runs ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from blindspot.cli.connection import KeyOpt, UrlOpt, connect, console, parse_json, print_json

app = typer.Typer(no_args_is_help=True, help="Model runs: list, gallery queries, metrics drill-down.")


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


@app.command("list")
def list_runs(url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """The workspace's runs."""
    with connect(url, api_key) as bs:
        runs = bs.runs()
    table = Table("id", "name", "version", "IoU", "conf", "created")
    for r in runs:
        table.add_row(str(r["id"]), r["name"], r["version"], _fmt(r["iou_threshold"]),
                      _fmt(r["confidence_threshold"]), str(r["created_at"])[:19])  # fmt: skip
    console.print(table)


@app.command("classes")
def classes(run_id: int, split: str = "all", url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Per-class metrics of a run for one split."""
    with connect(url, api_key) as bs:
        rows = bs.class_metrics(run_id, split)
    table = Table("class", "GT", "pred", "TP", "FP", "FN", "P", "R", "F1", "AP", "AP50")
    for r in rows:
        table.add_row(r["class_name"] or "(all)", *(_fmt(r[k]) for k in
                      ("num_gt", "num_pred", "tp", "fp", "fn", "precision", "recall", "f1", "ap", "ap50")))  # fmt: skip
    console.print(table)


@app.command("histogram")
def histogram(
    run_id: int,
    metric: str,
    class_name: Annotated[str | None, typer.Option("--class")] = None,
    split: str | None = None,
    bins: int = 10,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """A metric's histogram; each bucket's filter opens its rows (`blindspot runs gallery --filter`)."""
    with connect(url, api_key) as bs:
        h = bs.histogram(run_id, metric, class_name=class_name, split=split, bins=bins)
    peak = max((b["count"] for b in h["buckets"]), default=1) or 1
    for b in h["buckets"]:
        label = "null" if b["lo"] is None else f"[{b['lo']:.2f}, {b['hi']:.2f})"
        console.print(f"{label:>14} {b['count']:>8}  " + "█" * round(40 * b["count"] / peak))


@app.command("auto-slices")
def auto_slices(run_id: int, split: str | None = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """The run's error slices (false positives, low recall, candidate mislabels...) with counts."""
    with connect(url, api_key) as bs:
        slices = bs.auto_slices(run_id, split)
    table = Table("key", "rows", "filter")
    for s in slices:
        table.add_row(s["key"], str(s["count"]), json.dumps(s["filter"]))
    console.print(table)


@app.command("compare")
def compare(run_id: int, other_run_id: int, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Rows fixed, regressed, with new errors or still wrong in RUN_ID against OTHER_RUN_ID."""
    with connect(url, api_key) as bs:
        out = bs.compare(run_id, other_run_id)
    print_json(out["counts"])


@app.command("gallery")
def gallery(
    run_id: int,
    filter: Annotated[
        str | None,
        typer.Option(help='Filter JSON, e.g. {"all": [{"field": "iou", "op": "lt", "value": 0.5}]}'),
    ] = None,
    sort: Annotated[str | None, typer.Option(help='Sort JSON, e.g. {"field": "iou", "order": "asc"}')] = None,
    limit: int = 20,
    iou_threshold: float | None = None,
    confidence_threshold: float | None = None,
    out: Annotated[
        Path | None, typer.Option(help="Write every matching row as JSON lines (all pages).")
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Query a run's gallery: a table of the first page, or every page into --out with a progress bar."""
    flt = parse_json(filter, "--filter")
    srt = parse_json(sort, "--sort")
    kw: dict[str, Any] = {
        "filter": flt,
        "sort": srt,
        "iou_threshold": iou_threshold,
        "confidence_threshold": confidence_threshold,
    }
    with connect(url, api_key) as bs:
        if out is None:
            page = bs.gallery(run_id, limit=limit, include_total=True, **kw)
            table = Table("row", "key", "split", "GT", "pred", "TP", "FP", "FN", "IoU", "conf", "F1")
            for r in page["rows"]:
                m = r["metrics"]
                table.add_row(str(r["data_row_id"]), r["global_key"][:40], r["split"] or "", *(_fmt(m[k]) for k in
                              ("num_gt", "num_pred", "tp", "fp", "fn", "mean_iou", "mean_conf", "f1")))  # fmt: skip
            console.print(table)
            console.print(f"{page['total']} rows match" + (" (more pages)" if page["next_cursor"] else ""))
            return
        total = bs.gallery(run_id, limit=1, include_total=True, **kw)["total"]
        columns = (TextColumn("rows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress, out.open("w") as fh:
            task = progress.add_task("rows", total=total)
            for row in bs.iter_gallery(run_id, **kw):
                fh.write(json.dumps(row) + "\n")
                progress.advance(task)
    console.print(f"wrote {total} rows to {out}")
