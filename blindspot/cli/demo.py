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

The steps live in blindspot/demo/ (steps.py: HTTP; dataset.py: the generated files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from blindspot.demo.steps import RUN, DemoError, DemoResult, run_demo
from blindspot.sdk import ApiError
from shared.settings import get_settings

app = typer.Typer(help="Load the demo data set, run the demo detector, compute metrics.")
err = Console(stderr=True, soft_wrap=True)


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
