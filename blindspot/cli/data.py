"""``blindspot data``: upload a folder of images, import ground truth and predictions, create runs, follow jobs.

Talks HTTP only: to the gateway with an API key (``--api-key`` / ``BLINDSPOT_API_KEY``), or, for local
development, straight to the ingest service with the internal token and ``--workspace``.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from shared.internal_auth import internal_headers
from shared.settings import get_settings

app = typer.Typer(
    no_args_is_help=True, help="Upload images, ground truth and predictions; create model runs."
)
console = Console(stderr=True)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
GT_FORMATS = ("coco", "yolo", "voc", "labelbox")
PRED_FORMATS = ("coco", "yolo", "ultralytics", "labelbox")

UrlOpt = typer.Option(None, "--url", envvar="BLINDSPOT_URL", help="Gateway (or ingest) base URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="BLINDSPOT_API_KEY", help="API key (bsk_...).")
WsOpt = typer.Option(
    None,
    "--workspace",
    envvar="BLINDSPOT_WORKSPACE",
    help="Dev only: call ingest directly as this workspace.",
)


def client(url: str | None, api_key: str | None, workspace: int | None) -> httpx.Client:
    settings = get_settings()
    if api_key:
        headers = {"Authorization": f"Bearer {api_key}"}
        base = url or settings.services.gateway
    elif workspace is not None:
        headers = internal_headers(workspace)
        base = url or settings.services.ingest
    else:
        raise typer.BadParameter(
            "give --api-key (or BLINDSPOT_API_KEY), or --workspace for a local ingest service"
        )
    return httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(600.0, connect=10.0))


def check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        console.print(f"[red]error {r.status_code}[/red]: {detail}")
        raise typer.Exit(1)
    return r.json()


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def tar_chunks(folder: Path, files: list[Path], on_file: Any) -> Iterator[bytes]:
    """A tar stream of ``files`` (member name = path relative to ``folder``), produced as it is read."""
    for path in files:
        data = path.read_bytes()
        info = tarfile.TarInfo(path.relative_to(folder).as_posix())
        info.size = len(data)
        info.mtime = int(path.stat().st_mtime)
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield data
        pad = (-len(data)) % tarfile.BLOCKSIZE
        if pad:
            yield b"\0" * pad
        on_file(len(data))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def resolve_dataset(c: httpx.Client, dataset: str, create: bool) -> int:
    if dataset.isdigit():
        return int(dataset)
    for d in check(c.get("/v1/datasets")):
        if d["name"] == dataset:
            return int(d["id"])
    if not create:
        console.print(f"[red]no dataset named {dataset!r}[/red] (use --create)")
        raise typer.Exit(1)
    return int(check(c.post("/v1/datasets", json={"name": dataset, "description": ""}))["id"])


@app.command()
def upload(
    folder: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Folder of images (searched recursively)."
    ),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset id or name."),
    create: bool = typer.Option(True, help="Create the dataset if the name is new."),
    batch: int = typer.Option(200, min=1, help="Images per streamed request (each request is atomic)."),
    parallel: int = typer.Option(2, min=1, max=16, help="Requests in flight at once."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Upload every image under FOLDER; its path relative to FOLDER is its global key (re-upload = upsert)."""
    files = find_images(folder)
    if not files:
        console.print(f"no images under {folder}")
        raise typer.Exit(1)
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    with client(url, api_key, workspace) as c:
        ds = resolve_dataset(c, dataset, create)
        total_bytes = sum(p.stat().st_size for p in files)
        with Progress(
            TextColumn("[bold]upload"),
            BarColumn(),
            MofNCompleteColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("images", total=len(files))
            bytes_task = bar.add_task("bytes", total=total_bytes, visible=False)

            def advance(n: int) -> None:
                bar.advance(task)
                bar.advance(bytes_task, n)

            def send(part: list[Path]) -> dict[str, Any]:
                r = c.post(
                    f"/v1/datasets/{ds}/rows:stream",
                    content=tar_chunks(folder, part, advance),
                    headers={"Content-Type": "application/x-tar"},
                )
                return dict(check(r))

            parts = [files[i : i + batch] for i in range(0, len(files), batch)]
            with ThreadPoolExecutor(parallel) as pool:
                for body in pool.map(send, parts):
                    for k in totals:
                        totals[k] += body[k]
    console.print(
        f"dataset {ds}: {totals['created']} created, {totals['updated']} updated, {totals['unchanged']} unchanged"
    )


def follow(c: httpx.Client, job: dict[str, Any], poll_s: float = 0.5) -> dict[str, Any]:
    """Show a job's progress until it finishes."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task(job["kind"], total=job["total"] or None, completed=job["processed"])
        while job["status"] in ("queued", "running"):
            time.sleep(poll_s)
            job = check(c.get(f"/v1/jobs/{job['id']}"))
            bar.update(task, total=job["total"] or None, completed=job["processed"])
    return job


def report(job: dict[str, Any]) -> None:
    if job["status"] == "succeeded":
        console.print(f"[green]job {job['id']} succeeded[/green]: {json.dumps(job['result'])}")
    else:
        console.print(f"[red]job {job['id']} {job['status']}[/red]: {json.dumps(job['errors'])}")
        raise typer.Exit(1)


@app.command("import-annotations")
def import_annotations(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset id or name."),
    format: str = typer.Option(
        ..., "--format", "-f", help="coco | yolo (zip with data.yaml) | voc | labelbox"
    ),
    create_classes: bool = typer.Option(True, help="Create class names the file introduces."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Import ground-truth boxes (replaces the boxes of every image the file names)."""
    if format not in GT_FORMATS:
        raise typer.BadParameter(f"format must be one of {', '.join(GT_FORMATS)}")
    with client(url, api_key, workspace) as c:
        ds = resolve_dataset(c, dataset, create=False)
        with file.open("rb") as fh:
            r = c.post(
                f"/v1/datasets/{ds}/annotations",
                params={"format": format, "create_classes": str(create_classes).lower()},
                files={"file": (file.name, fh)},
            )
        report(follow(c, check(r)))


@app.command("import-predictions")
def import_predictions(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    run: int = typer.Option(..., "--run", "-r", help="Model run id."),
    format: str = typer.Option(..., "--format", "-f", help="coco (results) | yolo | ultralytics | labelbox"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Also match images in this dataset."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Import a detector's predictions into a run (a box without confidence counts as 1.0)."""
    if format not in PRED_FORMATS:
        raise typer.BadParameter(f"format must be one of {', '.join(PRED_FORMATS)}")
    with client(url, api_key, workspace) as c:
        params: dict[str, Any] = {"format": format}
        if dataset is not None:
            params["dataset_id"] = resolve_dataset(c, dataset, create=False)
        with file.open("rb") as fh:
            r = c.post(f"/v1/runs/{run}/predictions", params=params, files={"file": (file.name, fh)})
        report(follow(c, check(r)))


@app.command("create-run")
def create_run(
    name: str = typer.Argument(...),
    version: str = typer.Option("1"),
    iou_threshold: float = typer.Option(0.5, "--iou", min=0.0, max=1.0),
    confidence_threshold: float = typer.Option(0.5, "--conf", min=0.0, max=1.0),
    config: str = typer.Option("{}", help="Free JSON config of the run."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Create a model run; prints its id."""
    body = {
        "name": name,
        "version": version,
        "iou_threshold": iou_threshold,
        "confidence_threshold": confidence_threshold,
        "config": json.loads(config),
    }
    with client(url, api_key, workspace) as c:
        run = check(c.post("/v1/runs", json=body))
    typer.echo(run["id"])


@app.command("assign-split")
def assign_split(
    run: int = typer.Option(..., "--run", "-r"),
    split: str = typer.Option(..., "--split", help="train | validation | test | unassigned"),
    keys: Path = typer.Argument(..., exists=True, dir_okay=False, help="File with one global key per line."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Put the rows named in KEYS into RUN with SPLIT."""
    items = [{"global_key": k.strip(), "split": split} for k in keys.read_text().splitlines() if k.strip()]
    with client(url, api_key, workspace) as c:
        out = check(c.put(f"/v1/runs/{run}/rows", json=items))
    console.print(f"{out['rows']} rows in run {run} ({out['changed']} changed)")


@app.command()
def job(
    job_id: str = typer.Argument(...),
    watch: bool = typer.Option(True, help="Follow until it finishes."),
    url: str | None = UrlOpt,
    api_key: str | None = KeyOpt,
    workspace: int | None = WsOpt,
) -> None:
    """Show a job's state and progress."""
    with client(url, api_key, workspace) as c:
        state = check(c.get(f"/v1/jobs/{job_id}"))
        if watch:
            state = follow(c, state)
    typer.echo(json.dumps(state, indent=2))
    if state["status"] == "failed":
        raise typer.Exit(1)
