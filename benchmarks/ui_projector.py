"""Projector benchmark: the web UI's 2-D map at 10k (anchor) and 100k points in headless Chromium.

    .venv/bin/python benchmarks/ui_projector.py                  # 10k anchor + 100k points
    .venv/bin/python benchmarks/ui_projector.py --points 300000  # a bigger map

Builds a fresh database (``--db``, default ``blindspot_bench_ui``) by the real migrations, a workspace
with an API key, a run, and one projection per size with points COPYed in (clustered Gaussians). Serves
the real search and gateway apps (uvicorn in threads) and drives Debian's Chromium through Playwright:
opens the projector on each map and measures the load of every point page through the gateway, the
full redraw (every point written into an ImageData), 20 wheel zooms, 20 pan drags, and 5 lassos over
half the map. Prints medians, the ratio of the 100k figures to the 10k anchor measured in the same run,
and the goal: a redraw within one 60 Hz frame (16.7 ms) at 100k points.
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.gateway.domain import generate_key, hash_secret
from shared.db import migrate
from shared.settings import QdrantSettings, Settings

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
FRAME_MS = 1000 / 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: Any, name: str) -> tuple[str, uvicorn.Server]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, name=name, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def _fresh_db(base_url: str, name: str) -> str:
    u = make_url(base_url).set(database=name)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = u.render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def _seed(url: str, pepper: str, sizes: list[int]) -> tuple[str, int, dict[int, int]]:
    """Workspace, key, run, one projection per size; returns (key, run id, {size: projection id})."""
    key = generate_key()
    rng = np.random.default_rng(3)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        ws = conn.execute("INSERT INTO workspaces (name) VALUES ('bench-ui') RETURNING id").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO api_keys (workspace_id, name, prefix, key_hash, scopes) VALUES (%s, 'bench', %s, %s, %s)",
            (ws, key.prefix, hash_secret(key.secret, pepper), ["read", "write"]),
        )
        run = conn.execute(
            "INSERT INTO model_runs (workspace_id, name) VALUES (%s, 'bench-ui') RETURNING id", (ws,)
        ).fetchone()[0]  # type: ignore[index]
        projections: dict[int, int] = {}
        for n in sizes:
            pid = conn.execute(
                "INSERT INTO projections (workspace_id, model_run_id, method, status)"
                " VALUES (%s, %s, 'umap', 'succeeded') RETURNING id",
                (ws, run),
            ).fetchone()[0]  # type: ignore[index]
            centers = rng.normal(0, 6, size=(12, 2))
            which = rng.integers(0, len(centers), size=n)
            xy = centers[which] + rng.normal(0, 1, size=(n, 2))
            buf = io.StringIO()
            for i in range(n):
                buf.write(f"{pid},{i + 1},{xy[i, 0]:.5f},{xy[i, 1]:.5f}\n")
            with conn.cursor().copy(
                "COPY projection_points (projection_id, data_row_id, x, y) FROM STDIN WITH (FORMAT csv)"
            ) as cp:
                cp.write(buf.getvalue())
            projections[n] = pid
    return key.plaintext, run, projections


def _measure(page: Any, base: str, run: int, pid: int, n: int, rounds: int) -> dict[str, float]:
    t0 = time.perf_counter()
    page.goto(f"{base}/#/runs/{run}/projector?color=mean_iou&projection={pid}")
    page.wait_for_selector(".proj-stage[data-ready=true]", timeout=300_000)
    load_ms = (time.perf_counter() - t0) * 1000
    got = int(page.locator("[data-testid=projector-info]").get_attribute("data-points") or 0)
    assert got == n, f"expected {n} points, the map shows {got}"
    stage = page.locator(".proj-stage")
    box = page.locator(".proj-overlay").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    draws = [float(stage.get_attribute("data-draw-ms") or "nan")]
    zooms: list[float] = []
    pans: list[float] = []
    for i in range(rounds):
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, -120 if i % 2 == 0 else 120)
        page.wait_for_timeout(30)
        zooms.append(float(stage.get_attribute("data-draw-ms") or "nan"))
    for i in range(rounds):
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + (40 if i % 2 == 0 else -40), cy + 20, steps=1)
        page.mouse.up()
        pans.append(float(stage.get_attribute("data-draw-ms") or "nan"))
    page.get_by_role("button", name="Reset view").click()
    page.click("[data-testid=lasso-mode]")
    lassos: list[float] = []
    for _ in range(5):  # a lasso over the left half of the map, 5 times (median)
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.down()
        for fx, fy in [(0.5, 0.02), (0.5, 0.98), (0.02, 0.98), (0.02, 0.02)]:
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=10)
        page.mouse.up()
        page.wait_for_function("() => document.querySelector('.proj-stage').dataset.lassoMs !== undefined")
        lassos.append(float(stage.get_attribute("data-lasso-ms") or "nan"))
    selected = int((page.locator("[data-testid=lasso-count]").inner_text() or "0 ").split()[0] or 0)
    return {
        "load_ms": load_ms,
        "first_draw_ms": draws[0],
        "zoom_draw_ms": statistics.median(zooms),
        "pan_draw_ms": statistics.median(pans),
        "lasso_ms": statistics.median(lassos),
        "lasso_selected": selected,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000, help="points of the measured map")
    ap.add_argument("--anchor", type=int, default=10_000, help="points of the anchor map")
    ap.add_argument("--rounds", type=int, default=20, help="zoom and pan events measured per map")
    ap.add_argument("--db", default="blindspot_bench_ui")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from services.gateway.main import create_app as gateway_app
    from services.search.main import create_app as search_app

    base = Settings()
    url = _fresh_db(base.database.url, args.db)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(env="test", database={"url": url}, qdrant=QdrantSettings(path=Path(tmp)))  # type: ignore[arg-type]
        key, run, projections = _seed(url, settings.secret_key.get_secret_value(), [args.anchor, args.points])
        search_url, search = _serve(
            search_app(settings, sender=lambda *_: None, inprocess_worker=False), "bench-search"
        )
        settings = settings.model_copy(
            update={"services": settings.services.model_copy(update={"search": search_url})}
        )
        gateway_url, gateway = _serve(gateway_app(settings), "bench-gateway")
        results: dict[int, dict[str, float]] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('blindspot.apiKey', {key!r});")
            page = context.new_page()
            for n in (args.anchor, args.points):
                results[n] = _measure(page, gateway_url, run, projections[n], n, args.rounds)
            browser.close()
        gateway.should_exit = True
        search.should_exit = True

    a, m = results[args.anchor], results[args.points]
    print(f"\nProjector, headless Chromium (CPU raster), viewport 1440x900, {args.rounds} events per kind")
    print(f"{'metric':<18}{args.anchor:>12,}{args.points:>12,}{'ratio':>9}")
    for k in ("load_ms", "first_draw_ms", "zoom_draw_ms", "pan_draw_ms", "lasso_ms", "lasso_selected"):
        ratio = m[k] / a[k] if a[k] else float("nan")
        print(f"{k:<18}{a[k]:>12.1f}{m[k]:>12.1f}{ratio:>8.1f}x")
    ok = m["zoom_draw_ms"] <= FRAME_MS and m["pan_draw_ms"] <= FRAME_MS
    print(
        f"goal: redraw at {args.points:,} points within one 60 Hz frame ({FRAME_MS:.1f} ms): {'met' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
