"""``blindspot demo``: fill a running stack with the demo data set, a detector run and its metrics.

HTTP only, through the gateway and the SDK (``make demo`` = ``blindspot stack up`` + ``blindspot demo``).
Every step reuses what a previous run left (idempotent):

1. a workspace ``demo`` and its admin key, kept in ``<stack_dir>/demo_api_key``;
2. the generated street scenes (``tools/demo_data.py``, run as ``python -m tools.demo_data``), uploaded
   through the streaming bulk path; COCO ground truth for ~80 % of them (the rest is the unlabeled pool);
3. model run ``yolov8n-demo`` over the labeled rows (train / validation / test), a 2-D projection, the
   demo detector run through ``POST /v1/runs/{id}/infer``, then the metrics;
4. a labeling batch of unlabeled rows that look like the worst rows (the similarity -> batch loop);
5. where to look: the gallery URL, the key, mAP / AP50, how to stop the stack.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from blindspot.cli.data import tar_chunks
from blindspot.sdk import ApiError, Client
from shared.settings import REPO_ROOT, Settings, get_settings

app = typer.Typer(help="Load the demo data set, run the demo detector, compute metrics.")
err = Console(stderr=True)

WORKSPACE = "demo"
DATASET = "demo-street"
RUN = "yolov8n-demo"
PROJECT = "demo-labeling"
SPLITS = ("train",) * 6 + ("validation",) * 2 + ("test",) * 2  # by position among the labeled rows
UPLOAD_BATCH = 100


class DemoError(Exception):
    """A step that cannot go on; the message says which and what to look at."""


@dataclass
class DemoResult:
    api_key: str
    workspace: str
    dataset_id: int
    run_id: int
    projection_id: int | None
    labeled_keys: list[str]
    unlabeled_keys: list[str]
    row_ids: dict[str, int]
    summary: dict[str, Any]
    batch: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


# --- steps --------------------------------------------------------------------------------------------


def ensure_api_key(url: str, key_file: Path, bootstrap_token: str) -> tuple[str, str]:
    """The saved demo key if the gateway still accepts it, else a new workspace and admin key."""
    if key_file.is_file():
        key = key_file.read_text().strip()
        with Client(url, key) as bs:
            try:
                return key, f"#{bs.me()['workspace_id']}"
            except ApiError as exc:
                if exc.status not in (401, 403):
                    raise
        err.print(f"[yellow]the saved key in {key_file} is not accepted any more: making a new one[/]")
    with Client(url, None) as bs:
        for n in range(1, 50):
            name = WORKSPACE if n == 1 else f"{WORKSPACE}-{n}"
            try:
                out = bs.create_workspace(name, bootstrap_token)
            except ApiError as exc:
                if exc.status == 409:  # the workspace exists but its key is lost: take the next name
                    continue
                raise
            key = str(out["api_key"]["key"])
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
            return key, name
    raise DemoError("could not create a demo workspace: names demo .. demo-49 are all taken")


def ensure_images(folder: Path, n: int, seed: int) -> Path:
    """Generate the scenes once (``tools.demo_data``, deterministic in n and seed); the output folder."""
    out = folder / f"n{n}-seed{seed}"
    if (out / "data.yaml").is_file():  # written last: the set is complete
        return out
    if not (REPO_ROOT / "tools" / "demo_data.py").is_file():
        raise DemoError(f"the demo data generator {REPO_ROOT / 'tools' / 'demo_data.py'} is missing")
    cmd = [sys.executable, "-m", "tools.demo_data", "--out", str(out), "--n", str(n), "--seed", str(seed)]
    with err.status(f"generating {n} demo images (seed {seed})"):
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")
    return out


def split_labeled(images: list[dict[str, Any]], unlabeled_fraction: float) -> tuple[list[str], list[str]]:
    """Keys (``train/000012.jpg``) in id order, spread evenly: every 1/fraction-th one stays unlabeled."""
    keys = [im["key"] for im in sorted(images, key=lambda im: im["key"].rsplit("/", 1)[-1])]
    labeled: list[str] = []
    unlabeled: list[str] = []
    for i, key in enumerate(keys):
        hold = int((i + 1) * unlabeled_fraction) > int(i * unlabeled_fraction)
        (unlabeled if hold else labeled).append(key)
    return labeled, unlabeled


def load_coco(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Images (with ``key`` = path under images/), annotations and categories of both generated splits."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    cats: list[dict[str, Any]] = []
    for split in ("train", "val"):
        coco = json.loads((data / "annotations" / f"{split}.json").read_text())
        cats = coco["categories"]
        base = len(images)
        for im in coco["images"]:
            images.append({**im, "id": base + im["id"], "key": f"{split}/{im['file_name']}"})
        anns += [{**a, "image_id": base + a["image_id"]} for a in coco["annotations"]]
    return images, anns, cats


def ground_truth(images: list[dict[str, Any]], anns: list[dict[str, Any]], cats: list[dict[str, Any]],
                 labeled: set[str]) -> bytes:  # fmt: skip
    """COCO GT of the labeled images only; ``file_name`` is the global key (an exact match)."""
    keep = [im for im in images if im["key"] in labeled]
    ids = {im["id"] for im in keep}
    coco = {
        "images": [
            {"id": im["id"], "file_name": im["key"], "width": im["width"], "height": im["height"]}
            for im in keep
        ],
        "annotations": [a for a in anns if a["image_id"] in ids],
        "categories": cats,
    }
    return json.dumps(coco).encode()


def upload(bs: Client, dataset_id: int, folder: Path, keys: list[str]) -> tuple[dict[str, int], int]:
    """Stream the images in tar batches with a progress bar: ({global key: data row id}, rows changed)."""
    files = [folder / k for k in keys]
    row_ids: dict[str, int] = {}
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    with Progress(TextColumn("[bold]upload"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:  # fmt: skip
        task = bar.add_task("images", total=len(files))
        parts = [files[i : i + UPLOAD_BATCH] for i in range(0, len(files), UPLOAD_BATCH)]

        def send(part: list[Path]) -> dict[str, Any]:
            return bs.upload_tar(dataset_id, tar_chunks(folder, part, lambda _n: bar.advance(task)))

        with ThreadPoolExecutor(2) as pool:
            for body in pool.map(send, parts):
                for k in totals:
                    totals[k] += int(body[k])
                row_ids.update({r["global_key"]: int(r["id"]) for r in body["rows"]})
    err.print(
        f"dataset {dataset_id}: {totals['created']} created, {totals['updated']} updated, "
        f"{totals['unchanged']} unchanged"
    )
    return row_ids, totals["created"] + totals["updated"]


def wait_for(what: str, check: Callable[[], tuple[bool, str]], deadline: float, poll_s: float = 1.0) -> None:
    """Poll ``check`` (done, progress text) until done; DemoError naming the step at the deadline."""
    last = ""
    with err.status(f"waiting for {what}") as status:
        while True:
            done, last = check()
            if done:
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"timed out waiting for {what} ({last}); look at `blindspot stack logs honcho`"
                )
            status.update(f"waiting for {what}: {last}")
            time.sleep(poll_s)


def follow_job(bs: Client, job: dict[str, Any], deadline: float) -> dict[str, Any]:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as bar:  # fmt: skip
        task = bar.add_task(job.get("kind", "job"), total=job.get("total") or None)
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise DemoError(f"job {job['id']} still {job['status']} ({job['processed']}/{job['total']})")
            time.sleep(0.5)
            job = bs.job(str(job["id"]))
            bar.update(task, total=job["total"] or None, completed=job["processed"])
        bar.update(task, total=job.get("total") or None, completed=job.get("processed") or 0)
    if job["status"] != "succeeded":
        raise DemoError(
            f"job {job['id']} ({job['kind']}) {job['status']}: {json.dumps(job['errors'])[:1500]}"
        )
    return job


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def metrics_ready(bs: Client, run_id: int, n_rows: int, after: datetime | None) -> tuple[bool, str]:
    """Every row has row metrics, the per-class table exists and was aggregated after ``after``."""
    total = bs.gallery(run_id, limit=1, include_total=True).get("total") or 0
    run = bs.run(run_id)
    aggregated = _ts(run.get("aggregated_at"))
    fresh = aggregated is not None and (after is None or aggregated > after)
    classes = bs.class_metrics(run_id) if fresh and total >= n_rows else []
    done = total >= n_rows and fresh and any(c["class_id"] != 0 for c in classes)
    return done, f"row metrics {total}/{n_rows}, aggregated {'yes' if fresh else 'not yet'}"


def summary_row(bs: Client, run_id: int) -> dict[str, Any]:
    rows = bs.class_metrics(run_id)
    for split in ("all", "validation", "test", "train"):
        for r in rows:
            if r["class_id"] == 0 and r["split"] == split:
                return dict(r)
    return {}


def similarity_batch(bs: Client, run_id: int, unlabeled_ids: set[int]) -> dict[str, Any] | None:
    """Unlabeled rows like the 5 worst rows (lowest IoU) -> a batch in project ``demo-labeling``."""
    worst = bs.gallery(
        run_id,
        filter={"all": [{"field": "num_gt", "op": "gt", "value": 0}]},
        sort={"field": "iou", "order": "asc"},
        limit=5,
    )["rows"]
    anchors = [int(r["data_row_id"]) for r in worst]
    if not anchors or not unlabeled_ids:
        return None
    hits = bs.similar(anchors, limit=20, filter={"annotation": "none"})["rows"]
    ids = sorted(int(h["data_row_id"]) for h in hits)
    if not ids:
        return None
    project = next((p for p in bs.projects() if p["name"] == PROJECT), None) or bs.create_project(
        PROJECT, "Unlabeled rows that look like the demo run's worst rows"
    )
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
    return bs.create_batch(
        int(project["id"]),
        name=f"like-worst-iou-{digest[:6]}",
        idempotency_key=f"blindspot-demo-{run_id}-{digest}",
        selection={"data_row_ids": ids},
        priority=2,
        model_run_id=run_id,
    )


def run_detector(bs: Client, run_id: int, n_rows: int, settle_s: float, deadline: float) -> None:
    """POST /v1/runs/{id}/infer, follow the job, then wait until the metrics have settled."""
    accepted = bs.infer(run_id)
    err.print(f"detector {accepted['detector']} on {accepted['rows']} rows ({accepted['tasks']} tasks)")
    job = follow_job(bs, {"id": accepted["job_id"], "kind": "inference", "status": "queued",
                          "processed": 0, "total": accepted["rows"]}, deadline)  # fmt: skip
    after = _ts(job.get("updated_at"))
    wait_for("metrics", lambda: metrics_ready(bs, run_id, n_rows, after), deadline)
    # Settle: a row task still queued would aggregate again within the debounce; wait it out.
    while True:
        before = bs.run(run_id).get("aggregated_at")
        time.sleep(settle_s)
        if bs.run(run_id).get("aggregated_at") == before:
            return


def wait_embedded(bs: Client, row_ids: list[int], deadline: float) -> None:
    """Until every row has its image embedding (a similarity query names the rows that have none)."""

    def embedded() -> tuple[bool, str]:
        try:
            bs.similar(row_ids, limit=1)
        except ApiError as exc:
            if exc.status != 404:
                raise
            missing = exc.context.get("data_row_ids") or []
            return False, f"{len(missing)}{'+' if len(missing) >= 100 else ''} rows not embedded yet"
        return True, "all embedded"

    wait_for("image embeddings", embedded, deadline)


def ensure_projection(bs: Client, state: dict[str, Any], run_id: int, method: str) -> int:
    """The projection a previous demo made for this run (unless it failed), else a new one."""
    if state.get("run_id") == run_id and state.get("projection_id") and state.get("method") == method:
        try:
            if bs.projection(int(state["projection_id"]))["status"] != "failed":
                return int(state["projection_id"])
        except ApiError as exc:
            if exc.status != 404:
                raise
    return int(bs.create_projection(model_run_id=run_id, method=method)["id"])


def wait_projection(bs: Client, projection_id: int, deadline: float) -> None:
    def projected() -> tuple[bool, str]:
        p = bs.projection(projection_id)
        if p["status"] == "failed":
            raise DemoError(f"projection {projection_id} failed: {p}")
        return p["status"] == "succeeded", f"{p['status']}, {p.get('num_points', 0)} points"

    wait_for("the projection", projected, deadline)


def run_demo(
    settings: Settings,
    *,
    url: str,
    bootstrap_token: str,
    images: int,
    seed: int,
    unlabeled_fraction: float,
    confidence: float,
    method: str,
    timeout_s: float,
    force: bool = False,
) -> DemoResult:
    deadline = time.monotonic() + timeout_s
    stack_dir = Path(settings.stack_dir)
    state_file = stack_dir / "demo_state.json"
    clock: dict[str, float] = {}
    t0 = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t0
        clock[name] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()

    key, workspace = ensure_api_key(url, stack_dir / "demo_api_key", bootstrap_token)
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    if state.get("gateway") != url or state.get("api_key_prefix") != key[:16]:
        state = {}
    data = ensure_images(stack_dir / "demo_data", images, seed)
    lap("generate")
    all_images, anns, cats = load_coco(data)
    labeled, unlabeled = split_labeled(all_images, unlabeled_fraction)
    with Client(url, key, timeout=300.0) as bs:
        ds = next((d for d in bs.datasets() if d["name"] == DATASET), None) or bs.create_dataset(
            DATASET, "Generated street scenes (tools/demo_data.py)"
        )
        row_ids, changed = upload(bs, int(ds["id"]), data / "images", labeled + unlabeled)
        lap("upload")
        run = next((r for r in bs.runs() if r["name"] == RUN), None)
        complete = run is not None and metrics_ready(bs, int(run["id"]), len(labeled), None)[0]
        reuse = complete and not changed and not force
        if not reuse:
            gt = ground_truth(all_images, anns, cats, set(labeled))
            follow_job(bs, bs.import_annotations(int(ds["id"]), gt, filename="demo_gt.json"), deadline)
            lap("ground_truth")
        if run is None:
            run = bs.create_run(
                RUN,
                version="1",
                iou_threshold=0.5,
                confidence_threshold=confidence,
                config={"detector": "yolov8n (demo, ONNX)", "source": "blindspot demo"},
            )
        run_id = int(run["id"])
        bs.set_run_rows(run_id, [{"global_key": k, "split": SPLITS[i % 10]} for i, k in enumerate(labeled)])
        wait_embedded(bs, sorted(row_ids.values()), deadline)
        lap("embeddings")
        # Queued before the detector, so the map is not behind the object crops metrics sends to search.
        projection_id = ensure_projection(bs, state, run_id, method)
        state.update(gateway=url, api_key_prefix=key[:16], run_id=run_id, projection_id=projection_id,
                     method=method)  # fmt: skip
        state_file.write_text(json.dumps(state, indent=2))
        if reuse:
            err.print(f"run {run_id} already has its predictions and metrics: not running the detector again")
        else:
            run_detector(bs, run_id, len(labeled), settings.metrics.aggregate_debounce_s + 3.0, deadline)
            lap("inference_and_metrics")
        wait_projection(bs, projection_id, deadline)
        lap("projection")
        batch = similarity_batch(bs, run_id, {row_ids[k] for k in unlabeled})
        lap("batch")
        return DemoResult(
            api_key=key,
            workspace=workspace,
            dataset_id=int(ds["id"]),
            run_id=run_id,
            projection_id=projection_id,
            labeled_keys=labeled,
            unlabeled_keys=unlabeled,
            row_ids=row_ids,
            summary=summary_row(bs, run_id),
            batch=batch,
            timings=clock,
        )


# --- the command --------------------------------------------------------------------------------------


def _count(v: Any) -> int:
    return len(v) if isinstance(v, list) else int(v or 0)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def print_where_to_look(result: DemoResult, url: str, key_file: Path) -> None:
    out = Console(soft_wrap=True)
    base = url.rstrip("/")
    s = result.summary
    out.print()
    out.print(f"[bold green]Blindspot demo is ready[/] (workspace [bold]{result.workspace}[/])")
    out.print(f"  gallery, lowest IoU first  {base}/#/runs/{result.run_id}/gallery?sort=mean_iou:asc:")
    out.print(f"  per-class metrics          {base}/#/runs/{result.run_id}/metrics")
    if result.projection_id is not None:
        out.print(
            f"  projector                  {base}/#/runs/{result.run_id}/projector?projection={result.projection_id}"
        )
    out.print(f"  API docs                   {base}/docs")
    out.print(f"  API key (sign in with it)  {result.api_key}   (saved in {key_file})")
    out.print(
        f"  run {result.run_id} {RUN}: {len(result.labeled_keys)} labeled rows, "
        f"{len(result.unlabeled_keys)} unlabeled in the catalog; "
        f"mAP@[.5:.95] {_fmt(s.get('ap'))}, AP50 {_fmt(s.get('ap50'))}, "
        f"precision {_fmt(s.get('precision'))}, recall {_fmt(s.get('recall'))} (split {s.get('split', '-')})"
    )
    if result.batch:
        b = result.batch.get("batch", {})
        out.print(
            f"  labeling batch {b.get('name')} (id {b.get('id')}): {_count(result.batch.get('added'))} unlabeled rows "
            "similar to the worst rows"
        )
    out.print(f"  try: BLINDSPOT_API_KEY=$(cat {key_file}) blindspot runs classes {result.run_id}")
    out.print("  stop the stack: blindspot stack down   (or `make stack-down`; data stays in .stack/)")


@app.callback(invoke_without_command=True)
def demo(
    images: Annotated[int, typer.Option(min=10, max=20000, help="Images to generate (default 300).")] = 300,
    seed: Annotated[int, typer.Option(help="Generator seed (the detector was trained on seed 0).")] = 1,
    unlabeled: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Fraction of images left without ground truth.")
    ] = 0.2,
    confidence: Annotated[
        float, typer.Option("--conf", min=0.0, max=1.0, help="The run's confidence threshold.")
    ] = 0.25,
    method: Annotated[str, typer.Option(help="Projection method: umap or pca.")] = "umap",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for jobs, metrics, projection.")] = 900.0,
    force: Annotated[bool, typer.Option(help="Run the detector again even if the run is complete.")] = False,
    url: Annotated[str | None, typer.Option("--url", envvar="BLINDSPOT_URL", help="Gateway URL.")] = None,
    bootstrap_token: Annotated[
        str | None,
        typer.Option(envvar="BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN", help="The gateway's bootstrap token."),
    ] = None,
) -> None:
    """Generate and load the demo data, run the demo detector, compute metrics; print where to look."""
    if method not in ("umap", "pca"):
        raise typer.BadParameter("--method must be umap or pca")
    settings = get_settings()
    gateway = url or settings.services.gateway
    token = bootstrap_token or settings.gateway.bootstrap_token.get_secret_value()
    try:
        result = run_demo(
            settings,
            url=gateway,
            bootstrap_token=token,
            images=images,
            seed=seed,
            unlabeled_fraction=unlabeled,
            confidence=confidence,
            method=method,
            timeout_s=timeout,
            force=force,
        )
    except DemoError as exc:
        err.print(f"[red]demo failed[/]: {exc}")
        raise typer.Exit(1) from None
    except ApiError as exc:
        err.print(f"[red]demo failed[/]: {exc.status} {exc.error}: {exc.detail} {exc.context or ''}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err.print(f"[red]demo failed[/]: cannot reach the gateway at {gateway} ({exc}); is the stack up?"
                  " (`blindspot stack up`)")  # fmt: skip
        raise typer.Exit(1) from None
    err.print(f"timings (s): {json.dumps(result.timings)}")
    print_where_to_look(result, gateway, Path(settings.stack_dir) / "demo_api_key")
