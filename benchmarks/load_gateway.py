"""Load test: concurrent clients paging through gallery queries on a gateway over loopback HTTP.

    .venv/bin/python benchmarks/load_gateway.py                       # 200 clients, 60 s
    .venv/bin/python benchmarks/load_gateway.py --clients 50 --duration 20 --think 0.5

Starts the gateway with uvicorn (``--workers``, separate processes) on a free port, against the database
``benchmarks/gallery.py`` built (``--db``, built here with ``--rows`` when missing). Each client is a user
in the gallery: it runs a filter/sort (one of several, single-metric and class-restricted), follows the
keyset cursor for a few pages, pauses ``--think`` seconds (jittered) between pages, and starts over.
Prints requests, throughput, errors and latency percentiles, with the anchor ``GET /healthz`` measured
the same way in the same run. Goal (issue 10): 0 errors, p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.settings import get_settings  # noqa: E402

BOOTSTRAP = "load-bootstrap-token-0123456789"
QUERIES = [
    {"filter": {"all": [{"field": "iou", "op": "lt", "value": 0.7}]}, "sort": {"field": "iou", "order": "asc"}},
    {"filter": {"all": [{"field": "fp", "op": "gt", "value": 0}]}, "sort": {"field": "confidence", "order": "asc"}},
    {"filter": {"all": [{"field": "recall", "op": "lt", "value": 0.5}]}, "sort": {"field": "recall", "order": "desc"}},
    {"filter": {"all": [{"field": "recall", "class_name": "class0", "op": "lt", "value": 0.6}]},
     "sort": {"field": "recall", "class_name": "class0", "order": "asc"}},
    {"filter": {"all": [{"field": "split", "op": "eq", "value": "validation"},
                        {"field": "f1", "op": "lte", "value": 0.5}]}, "sort": {"field": "f1", "order": "asc"}},
]  # fmt: skip


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def ensure_db(url: str, rows: int) -> None:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(libpq) as conn:
            if conn.execute("SELECT count(*) FROM row_metrics").fetchone()[0]:  # type: ignore[index]
                return
    except psycopg.OperationalError:
        pass
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gallery import build  # type: ignore[import-not-found]

    print(f"building {rows:,} rows in {make_url(url).database} ...", flush=True)
    build(url, rows, 10, 0)


async def client_loop(
    c: httpx.AsyncClient,
    h: dict[str, str],
    run: int,
    stop: float,
    think: float,
    lat: list[float],
    errors: list[str],
) -> None:
    rng = random.Random()
    await asyncio.sleep(rng.uniform(0, think))  # spread the start
    while time.perf_counter() < stop:
        body: dict[str, Any] = {**rng.choice(QUERIES), "limit": 50}
        for _ in range(rng.randint(1, 5)):
            if time.perf_counter() >= stop:
                return
            t = time.perf_counter()
            try:
                r = await c.post(f"/v1/runs/{run}/gallery", json=body, headers=h)
                ok = r.status_code == 200
                if not ok:
                    errors.append(f"{r.status_code} {r.text[:120]}")
            except httpx.HTTPError as exc:
                ok = False
                errors.append(type(exc).__name__)
            lat.append((time.perf_counter() - t) * 1000)
            if not ok:
                break
            body["cursor"] = r.json()["next_cursor"]
            if body["cursor"] is None:
                break
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))


async def run_load(
    base: str, key: str, run: int, clients: int, duration: float, think: float
) -> dict[str, Any]:
    h = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
        anchor = []
        for _ in range(50):
            t = time.perf_counter()
            await c.get("/healthz")
            anchor.append((time.perf_counter() - t) * 1000)
        lat: list[float] = []
        errors: list[str] = []
        t0 = time.perf_counter()
        stop = t0 + duration
        await asyncio.gather(*(client_loop(c, h, run, stop, think, lat, errors) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {"lat": lat, "errors": errors, "wall": wall, "anchor": anchor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--think", type=float, default=1.0, help="mean pause between a user's pages (s)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--pool", type=int, default=8, help="Postgres connections per worker")
    ap.add_argument("--db", default="blindspot_bench")
    ap.add_argument("--rows", type=int, default=100_000, help="rows to build when --db is empty")
    args = ap.parse_args()
    url = make_url(get_settings().database.url).set(database=args.db).render_as_string(hide_password=False)
    ensure_db(url, args.rows)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "BLINDSPOT_DATABASE__URL": url,
        "BLINDSPOT_DATABASE__POOL_SIZE": str(args.pool),
        "BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN": BOOTSTRAP,
        "BLINDSPOT_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/uvicorn"), "services.gateway.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise SystemExit("gateway did not start")
            time.sleep(0.2)
        r = httpx.post(f"{base}/v1/workspaces", json={"name": f"load-{uuid.uuid4().hex[:6]}"},
                       headers={"X-Bootstrap-Token": BOOTSTRAP}, timeout=30)  # fmt: skip
        key = r.json()["api_key"]
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq, autocommit=True) as conn:
            ws, run = conn.execute("SELECT workspace_id, id FROM model_runs ORDER BY id LIMIT 1").fetchone()  # type: ignore[misc]
            conn.execute("UPDATE api_keys SET workspace_id = %s WHERE id = %s", (ws, key["id"]))
        print(
            f"{args.clients} clients x {args.duration:.0f} s, think {args.think} s, {args.workers} workers ...",
            flush=True,
        )
        res = asyncio.run(run_load(base, key["key"], run, args.clients, args.duration, args.think))
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat, errors, wall = res["lat"], res["errors"], res["wall"]
    a50 = pct(res["anchor"], 0.5)
    print(f"\nrequests {len(lat):,} in {wall:.1f} s = {len(lat) / wall:.0f} req/s; errors {len(errors)}")
    for q in (0.5, 0.95, 0.99):
        v = pct(lat, q)
        print(f"  p{int(q * 100):<3} {v:8.1f} ms   ({v / a50:.0f}x the /healthz anchor p50 {a50:.1f} ms)")
    print(f"  max  {max(lat) if lat else float('nan'):8.1f} ms")
    p99 = pct(lat, 0.99)
    print(
        f"goal: 0 errors -> {'ok' if not errors else 'MISSED'}; p99 <= 200 ms -> {'ok' if p99 <= 200 else 'MISSED'}"
    )
    if errors:
        print("first errors:", errors[:5])


if __name__ == "__main__":
    main()
