"""The steps of ``blindspot demo``, over HTTP through the gateway and the SDK (blindspot/sdk.py).

Each step reuses what a previous run left: the saved key, the rows (uploads are upserts by global key),
the run, its predictions and metrics when complete, the projection (``<stack_dir>/demo_state.json``), the
batch (idempotency key).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from blindspot.cli.data import tar_chunks
from blindspot.demo.dataset import DemoError, ensure_images, ground_truth, load_coco, split_labeled
from blindspot.sdk import ApiError, Client
from shared.settings import Settings

err = Console(stderr=True, soft_wrap=True)

WORKSPACE = "demo"
DATASET = "demo-street"
RUN = "yolov8n-demo"
PROJECT = "demo-labeling"
SPLITS = ("train",) * 6 + ("validation",) * 2 + ("test",) * 2  # by position among the labeled rows
UPLOAD_BATCH = 100
STALL_S = 120.0  # no embedding progress for this long = stuck


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

    seen: dict[str, Any] = {"missing": None, "since": time.monotonic()}

    def embedded() -> tuple[bool, str]:
        try:
            bs.similar(row_ids, limit=1)
        except ApiError as exc:
            if exc.status != 404:
                raise
            missing = sorted(exc.context.get("data_row_ids") or [])
            if missing != seen["missing"]:
                seen.update(missing=missing, since=time.monotonic())
            elif time.monotonic() - seen["since"] > STALL_S:
                raise DemoError(
                    f"no row got its embedding in {STALL_S:.0f}s; still missing: {missing[:20]}"
                    f"{' (first 100 shown)' if len(missing) >= 100 else ''}. The search service's"
                    " queue 'embeddings' is stuck or dropped them: see `blindspot stack logs honcho`"
                ) from None
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
        # Before the ground truth: the search service embeds rows under SKIP LOCKED, and an annotation
        # import holds those rows' locks, so rows embedded during an import would be skipped for good.
        wait_embedded(bs, sorted(row_ids.values()), deadline)
        lap("embeddings")
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
