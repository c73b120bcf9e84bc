"""Labeling projects and batches (``blindspot batches ...``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from blindspot.cli.connection import KeyOpt, UrlOpt, connect, console, parse_json

app = typer.Typer(no_args_is_help=True, help="Labeling projects and batches: create, export, import labels.")


@app.command("create-project")
def create_project(name: str, description: str = "", url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    with connect(url, api_key) as bs:
        p = bs.create_project(name, description)
    console.print(f"project {p['id']} [bold]{p['name']}[/bold]")


@app.command("projects")
def projects(url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    with connect(url, api_key) as bs:
        rows = bs.projects()
    table = Table("id", "name", "rows queued")
    for p in rows:
        table.add_row(str(p["id"]), p["name"], str(p["num_rows"]))
    console.print(table)


@app.command("create")
def create(
    project_id: int,
    name: str,
    priority: Annotated[int, typer.Option(min=1, max=5)] = 3,
    run_id: Annotated[
        int | None, typer.Option(help="Run whose boxes become pre-labels (and filter's run).")
    ] = None,
    filter: Annotated[str | None, typer.Option(help="Gallery filter JSON over --run-id.")] = None,
    ids: Annotated[str | None, typer.Option(help="Comma-separated data row ids.")] = None,
    slice_id: int | None = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retries with the same key never add twice.")
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create a batch from a selection (ids, a run's filter, or a slice)."""
    if sum(x is not None for x in (filter, ids, slice_id)) != 1:
        raise typer.BadParameter("give exactly one of --filter, --ids, --slice-id")
    if ids is not None:
        selection: dict = {"data_row_ids": [int(i) for i in ids.split(",") if i.strip()]}
    elif slice_id is not None:
        selection = {"slice_id": slice_id}
    else:
        if run_id is None:
            raise typer.BadParameter("--filter needs --run-id")
        selection = {"filter": parse_json(filter, "--filter"), "model_run_id": run_id}
    key = idempotency_key or uuid.uuid4().hex
    with connect(url, api_key) as bs:
        out = bs.create_batch(project_id, name=name, priority=priority, idempotency_key=key, selection=selection,
                              model_run_id=run_id)  # fmt: skip
    b = out["batch"]
    console.print(f"batch {b['id']} [bold]{b['name']}[/bold] (priority {b['priority']}, key {key})")
    console.print(f"added {len(out['added'])} rows; skipped {len(out['skipped'])} already in the project"
                  + (" (replayed)" if out["replayed"] else ""))  # fmt: skip


@app.command("export")
def export(
    batch_id: int,
    out: Path,
    format: Annotated[str, typer.Option(help="label_studio or coco")] = "label_studio",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Export a batch (presigned image URLs, the run's boxes as pre-labels)."""
    with (
        connect(url, api_key) as bs,
        Progress(SpinnerColumn(), TextColumn("exporting"), console=console) as p,
    ):
        p.add_task("export")
        data = bs.export_batch(batch_id, format)
    out.write_text(json.dumps(data, indent=1))
    n = len(data) if isinstance(data, list) else len(data["images"])
    console.print(f"wrote {n} tasks to {out}")


@app.command("import")
def import_labels(batch_id: int, labels: Path, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Import labels (Label Studio export JSON or COCO): replaces GT, re-triggers metrics."""
    payload = json.loads(labels.read_text())
    with (
        connect(url, api_key) as bs,
        Progress(SpinnerColumn(), TextColumn("importing"), console=console) as p,
    ):
        p.add_task("import")
        out = bs.import_labels(batch_id, payload)
    console.print(f"updated {out['rows_updated']} rows ({out['boxes_written']} boxes); "
                  f"metrics recompute queued for {len(out['metrics_recompute'])} runs")  # fmt: skip
