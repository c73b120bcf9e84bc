"""Load test: 200 gallery users on the gateway over loopback HTTP, driven by wrk (a separate C process).

    apt-get install -y wrk                                            # the load generator (Debian package)
    .venv/bin/python benchmarks/load_gateway.py --db blindspot_bench_1m   # 200 users, 60 s, think 5 s
    .venv/bin/python benchmarks/load_gateway.py --think 0             # closed loop: saturation throughput

Starts the gateway as production runs it: uvicorn with ``--workers`` processes (default: one per core),
each with its own Postgres pool, on a free loopback port, against the database ``benchmarks/gallery.py``
built (``--db``; built here with ``--rows`` when empty).

Client model (printed with the figures): ``--clients`` users, one keep-alive connection each (wrk
``-c``). A user sends a gallery page request (POST /v1/runs/{id}/gallery, 50 rows, auth by API key),
waits for the whole response, looks at the page for a think time drawn uniformly in
[0.5, 1.5] x ``--think`` seconds, and sends the next; the first request of each user is delayed the same
way, so users arrive spread over the first think time. A request is a page of a browsing session: one of
five filter/sort queries (single-metric and class-restricted), page k (1..5) of it with weight 6 - k
(sessions of 1 to 5 pages, each length equally likely); pages 2..5 carry the keyset cursors the gateway
returned for that query (fetched before the run), so the server does exactly the work of users following
``next_cursor``. Latency is measured by wrk from sending a request to its last byte (think time
excluded; wrk does not correct for coordinated omission, so ``--think 0`` numbers are a closed-loop
saturation test, not user latency).

uvicorn runs with ``--timeout-keep-alive 75`` (``--keep-alive``; a proxy's usual idle timeout): with its
default of 5 s, idle users' connections close under them and wrk counts each as a read error.

Prints requests, throughput, errors (non-2xx, socket errors, timeouts) and latency percentiles, with the
anchor ``GET /healthz`` driven the same way (same users, same think time) in the same run, and the CPU
time per page of the gateway processes and of their Postgres backends (from /proc): a figure that does not
depend on what else the box runs, and the pages/s the cores could serve if the gateway had them alone.
Goal (issue 10): 0 errors, p99 <= 200 ms for gallery pages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
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
PAGES_PER_SESSION = 5
QUERIES = [
    {"filter": {"all": [{"field": "iou", "op": "lt", "value": 0.7}]}, "sort": {"field": "iou", "order": "asc"}},
    {"filter": {"all": [{"field": "fp", "op": "gt", "value": 0}]}, "sort": {"field": "confidence", "order": "asc"}},
    {"filter": {"all": [{"field": "recall", "op": "lt", "value": 0.5}]}, "sort": {"field": "recall", "order": "desc"}},
    {"filter": {"all": [{"field": "recall", "class_name": "class0", "op": "lt", "value": 0.6}]},
     "sort": {"field": "recall", "class_name": "class0", "order": "asc"}},
    {"filter": {"all": [{"field": "split", "op": "eq", "value": "validation"},
                        {"field": "f1", "op": "lte", "value": 0.5}]}, "sort": {"field": "f1", "order": "asc"}},
]  # fmt: skip

# wrk script: requests pre-built in init(); delay() is the think time; done() prints one JSON line.
LUA = r"""
local reqs = {}
local weights = {}
local total = 0
local think_ms = 0
function init(args)
  think_ms = tonumber(args[1])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for i = 2, #args, 3 do
    local w = tonumber(args[i])
    total = total + w
    table.insert(weights, total)
    table.insert(reqs, wrk.format(args[i + 1], args[i + 2]:match("^[^|]*"), HEADERS,
                                  args[i + 2]:match("|(.*)$")))
  end
end
function delay()
  if think_ms == 0 then return 0 end
  return math.floor(think_ms * (0.5 + math.random()))
end
function request()
  local x = math.random() * total
  for i = 1, #weights do
    if x <= weights[i] then return reqs[i] end
  end
  return reqs[#reqs]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""


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


def session_requests(base: str, key: str, run: int) -> list[tuple[int, str, str]]:
    """(weight, method, 'path|body') per request of the mix: page k of each query, k = 1..5."""
    out = []
    h = {"Authorization": f"Bearer {key}"}
    for q in QUERIES:
        cursor = None
        for k in range(1, PAGES_PER_SESSION + 1):
            body = json.dumps({**q, "limit": 50, "cursor": cursor}, separators=(",", ":"))
            r = httpx.post(f"{base}/v1/runs/{run}/gallery", content=body, headers={**h, "Content-Type":
                           "application/json"}, timeout=60)  # fmt: skip
            r.raise_for_status()
            out.append((PAGES_PER_SESSION + 1 - k, "POST", f"/v1/runs/{run}/gallery|{body}"))
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
    return out


def run_wrk(
    base: str, key: str, reqs: list[tuple[int, str, str]], clients: int, duration: float, think_s: float
) -> dict[str, Any]:
    headers = json.dumps({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    lua = LUA.replace(
        "HEADERS", "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in json.loads(headers).items()) + "}"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    args = [str(int(think_s * 1000))]
    for w, method, path_body in reqs:
        args += [str(w), method, path_body]
    cmd = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{duration:.0f}s", "--timeout", "30s", "-s", f.name,
           base, "--", *args]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    return json.loads(line[4:])  # type: ignore[no-any-return]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (from /proc; vanished processes count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def postgres_cpu(libpq: str) -> dict[int, float]:
    """CPU seconds of each client backend of the database (the gateway's pooled connections)."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchall()]  # fmt: skip
    return {pid: cpu_seconds([pid]) for pid in pids}


def children(pid: int) -> list[int]:
    """``pid`` and its descendants (the uvicorn supervisor and its worker processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return out


def report(name: str, r: dict[str, Any]) -> None:
    secs = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    print(
        f"{name:<16}{r['requests']:>9,}{r['requests'] / secs:>8.1f}{errors:>7}"
        + "".join(f"{r[p] / 1000:>9.1f}" for p in ("p50", "p90", "p95", "p99", "max"))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=200, help="concurrent users (one connection each)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (gallery pages)")
    ap.add_argument("--anchor-duration", type=float, default=15.0, help="seconds of load on /healthz")
    ap.add_argument("--think", type=float, default=5.0, help="mean think time between a user's pages (s)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    ap.add_argument("--pool", type=int, default=5, help="Postgres connections per worker")
    ap.add_argument("--keep-alive", type=int, default=75,
                    help="uvicorn --timeout-keep-alive (s); above the longest think time, as a proxy's 75 s")  # fmt: skip
    ap.add_argument("--db", default="blindspot_bench")
    ap.add_argument("--rows", type=int, default=100_000, help="rows to build when --db is empty")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
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
        "PYTHONWARNINGS": "ignore",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/uvicorn"), "services.gateway.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
         "--backlog", "4096", "--timeout-keep-alive", str(args.keep_alive)],
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
        reqs = session_requests(base, key["key"], run)
        random.shuffle(reqs)
        print(
            f"gateway: uvicorn, {args.workers} worker processes x {args.pool} Postgres connections, "
            f"{os.cpu_count()} cores shared with Postgres and wrk (2 threads)\n"
            f"clients: {args.clients} users, one keep-alive connection each; think time uniform "
            f"[{0.5 * args.think:g}, {1.5 * args.think:g}] s between a user's requests (mean {args.think:g} s,"
            f" excluded from latency); requests: {len(reqs)} gallery pages (50 rows; {len(QUERIES)} queries x "
            f"pages 1..{PAGES_PER_SESSION} by keyset cursor, page k weighted {PAGES_PER_SESSION + 1} - k)",
            flush=True,
        )
        anchor = run_wrk(base, key["key"], [(1, "GET", "/healthz|")], args.clients, args.anchor_duration,
                         args.think)  # fmt: skip
        gateway_pids = children(server.pid)
        cpu0 = cpu_seconds(gateway_pids), postgres_cpu(libpq)
        pages = run_wrk(base, key["key"], reqs, args.clients, args.duration, args.think)
        cpu1 = cpu_seconds(gateway_pids), postgres_cpu(libpq)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n{'load':<16}{'requests':>9}{'req/s':>8}{'errors':>7}"
          + "".join(f"{p + ' ms':>9}" for p in ("p50", "p90", "p95", "p99", "max")))  # fmt: skip
    report(f"GET /healthz {args.anchor_duration:.0f}s", anchor)
    report(f"gallery {args.duration:.0f}s", pages)
    p99 = pages["p99"] / 1000
    errors = sum(pages[k] for k in ("connect", "read", "write", "status", "timeout"))
    for name, res in (("/healthz", anchor), ("gallery", pages)):
        if any(res[k] for k in ("connect", "read", "write", "status", "timeout")):
            print(f"{name} errors: " + ", ".join(f"{k} {res[k]}" for k in ("connect", "read", "write", "status",
                                                                      "timeout")))  # fmt: skip
    n = max(pages["requests"], 1)
    gw_ms = (cpu1[0] - cpu0[0]) * 1000 / n
    pg_ms = sum(v - cpu0[1].get(pid, 0.0) for pid, v in cpu1[1].items()) * 1000 / n
    cores = os.cpu_count() or 1
    print(
        f"CPU per gallery page: gateway {gw_ms:.1f} ms (all workers), Postgres {pg_ms:.1f} ms (its backends)"
        f" -> {cores} cores given to them alone would serve ~{cores * 1000 / max(gw_ms + pg_ms, 1e-3):.0f}"
        f" pages/s; this run got {(gw_ms + pg_ms) * n / 1000 / (pages['duration_us'] / 1e6):.2f}"
        f" cores of {cores} (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"gallery p99 = {p99 / max(anchor['p99'] / 1000, 1e-3):.1f}x the /healthz p99 under the same users\n"
        f"goal: 0 errors -> {'ok' if errors == 0 else 'MISSED'}; "
        f"p99 <= 200 ms -> {'ok' if p99 <= 200 else 'MISSED'} ({p99:.1f} ms)"
    )


if __name__ == "__main__":
    main()
