"""Gallery benchmark: N rows with metrics for C classes in Postgres, then gallery pages and histograms.

    .venv/bin/python benchmarks/gallery.py                 # 100,000 rows (a couple of minutes)
    .venv/bin/python benchmarks/gallery.py --rows 1000000  # the issue's size (~10 minutes on 2 cores)

Builds a fresh database (``--db``, default ``blindspot_bench``) by the real migrations, COPYs rows,
per-row and per-(row, class) metrics, GT boxes, predictions and matches, then times, through the real
gateway app (in-process ASGI, auth included): first pages and deep keyset pages (cursor in the middle of
the ordering) for single-metric and class-restricted filters with sorts, and histograms overall and per
class. Prints p50/p95 per query kind, ratios against anchors measured in the same run (pages: ``GET /v1/me``,
auth plus one indexed lookup; histograms: the bare SQL ``count(*)`` of the run's rows, the floor of any pass
over them), and the goals: p95 <= 50 ms per page, <= 200 ms per histogram.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.gateway.domain import INDEXED_METRICS
from shared.db import migrate
from shared.settings import DatabaseSettings, GatewaySettings, Settings, get_settings

BOOTSTRAP = "bench-bootstrap-token-0123456789"
SPLITS = np.array(["train", "validation", "test"])


def _csv(columns: list[np.ndarray], fmts: list[str]) -> bytes:
    """Columns -> CSV bytes; NaN becomes an empty field (NULL in COPY csv)."""
    buf = io.BytesIO()
    arr = np.empty((len(columns[0]), len(columns)), dtype=object)
    for i, c in enumerate(columns):
        arr[:, i] = c
    np.savetxt(buf, arr, fmt=fmts, delimiter=",")
    return buf.getvalue().replace(b"nan", b"")


def _copy(conn: psycopg.Connection[Any], table: str, cols: list[str], data: bytes) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)") as cp:
        step = 8 << 20
        for i in range(0, len(data), step):
            cp.write(data[i : i + step])


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        r = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(
            ~np.isnan(p) & ~np.isnan(r),
            np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0),
            np.nan,
        )
        f1 = np.where((np.isnan(p) & (r == 0)) | (np.isnan(r) & (p == 0)), 0.0, f1)
    return p, r, f1


def _metrics(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    num_gt = rng.poisson(1.6, n)
    num_pred = rng.poisson(1.8, n)
    tp = rng.binomial(np.minimum(num_gt, num_pred), 0.7)
    fp, fn = num_pred - tp, num_gt - tp
    p, r, f1 = _prf(tp, fp, fn)
    conf = rng.uniform(0.5, 1.0, (n, 3))
    conf.sort(axis=1)
    has_pred = num_pred > 0
    return {
        "num_gt": num_gt, "num_pred": num_pred, "tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
        "f1": f1, "mean_iou": np.where(tp > 0, rng.uniform(0.5, 0.97, n), np.nan),
        "min_conf": np.where(has_pred, conf[:, 0], np.nan), "mean_conf": np.where(has_pred, conf[:, 1], np.nan),
        "max_conf": np.where(has_pred, conf[:, 2], np.nan),
    }  # fmt: skip


# The gallery's secondary indexes (migrations gateway01, metrics03, metrics04, metrics06): their definitions are read
# from the migrated database, so the benchmark times exactly the layout the migrations create.
GALLERY_INDEX_NAMES = [
    *(f"ix_row_metrics_run_{m}" for m in INDEXED_METRICS),
    *(f"ix_row_metrics_split_{m}" for m in INDEXED_METRICS),
    *(f"ix_row_class_metrics_run_class_{m}" for m in INDEXED_METRICS),
    "ix_object_matches_run_error",
]


def gallery_indexes(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the gallery indexes, as the migrations defined them."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relname = ANY(%s)",
        (GALLERY_INDEX_NAMES,),
    ).fetchall()
    found = {str(n): str(d).replace(" ON ONLY ", " ON ") for n, d in rows}
    missing = set(GALLERY_INDEX_NAMES) - set(found)
    if missing:
        raise SystemExit(f"the migrated database lacks the gallery indexes {sorted(missing)}")
    return [(n, found[n]) for n in GALLERY_INDEX_NAMES]


METRIC_COLS = ["num_gt", "num_pred", "tp", "fp", "fn", "precision", "recall", "f1", "mean_iou", "min_conf",
               "mean_conf", "max_conf"]  # fmt: skip
METRIC_FMTS = ["%d"] * 5 + ["%.6g"] * 7


def build(url: str, n_rows: int, n_classes: int, seed: int) -> dict[str, Any]:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    migrate.upgrade(url)
    rng = np.random.default_rng(seed)
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    t0 = time.perf_counter()
    # Bulk load the usual way: the gallery's secondary indexes (migration gateway01) are dropped for the
    # COPY and built afterwards with the same definitions.
    with psycopg.connect(libpq, autocommit=True) as conn:
        indexes = gallery_indexes(conn)
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
    with psycopg.connect(libpq, autocommit=False) as conn:
        cur = conn.cursor()
        ws = cur.execute("INSERT INTO workspaces (name) VALUES ('bench') RETURNING id").fetchone()[0]  # type: ignore[index]
        ds = cur.execute(
            "INSERT INTO datasets (workspace_id, name) VALUES (%s, 'bench') RETURNING id", (ws,)
        ).fetchone()[0]  # type: ignore[index]
        class_ids = [
            cur.execute(
                "INSERT INTO classes (workspace_id, name) VALUES (%s, %s) RETURNING id", (ws, f"class{i}")
            ).fetchone()[0]  # type: ignore[index]
            for i in range(n_classes)
        ]
        run = cur.execute(
            "INSERT INTO model_runs (workspace_id, name) VALUES (%s, 'bench') RETURNING id", (ws,)
        ).fetchone()[0]  # type: ignore[index]
        ids = np.arange(1, n_rows + 1)
        split = SPLITS[rng.integers(0, 3, n_rows)]
        _copy(conn, "data_rows", ["id", "workspace_id", "dataset_id", "global_key", "object_key", "thumbnail_key",
                                  "width", "height", "sha256", "metadata", "num_annotations"],
              _csv([ids, np.full(n_rows, ws), np.full(n_rows, ds), np.char.add("k", ids.astype(str)),
                    np.char.add("images/", ids.astype(str)), np.char.add("thumbs/", ids.astype(str)),
                    np.full(n_rows, 640), np.full(n_rows, 480), np.char.add("sha", ids.astype(str)),
                    np.where(rng.random(n_rows) < 0.5, '"{""weather"": ""sun""}"', '"{""weather"": ""rain""}"'),
                    np.full(n_rows, 2)],
                   ["%d", "%d", "%d", "%s", "%s", "%s", "%d", "%d", "%s", "%s", "%d"]))  # fmt: skip
        cur.execute("SELECT setval('data_rows_id_seq', %s)", (n_rows,))
        _copy(conn, "model_run_rows", ["model_run_id", "data_row_id", "split"],
              _csv([np.full(n_rows, run), ids, split], ["%d", "%d", "%s"]))  # fmt: skip
        m = _metrics(rng, n_rows)
        _copy(conn, "row_metrics", ["model_run_id", "data_row_id", "split", "has_gt", "has_pred", *METRIC_COLS],
              _csv([np.full(n_rows, run), ids, split, m["num_gt"] > 0, m["num_pred"] > 0, *(m[c] for c in METRIC_COLS)],
                   ["%d", "%d", "%s", "%s", "%s", *METRIC_FMTS]))  # fmt: skip
        # Per (row, class): 1-3 classes per row (skewed: class0 is the common one).
        k = rng.integers(1, 4, n_rows)
        rows_rc = np.repeat(ids, k)
        weights = np.linspace(2.0, 0.5, n_classes)
        cls_idx = rng.choice(n_classes, len(rows_rc), p=weights / weights.sum())
        pair = np.unique(rows_rc * 1000 + cls_idx)
        rows_rc, cls_idx = pair // 1000, pair % 1000
        mc = _metrics(rng, len(rows_rc))
        cls = np.asarray(class_ids)[cls_idx]
        _copy(conn, "row_class_metrics", ["model_run_id", "class_id", "data_row_id", "split", *METRIC_COLS],
              _csv([np.full(len(rows_rc), run), cls, rows_rc, split[rows_rc - 1], *(mc[c] for c in METRIC_COLS)],
                   ["%d", "%d", "%d", "%s", *METRIC_FMTS]))  # fmt: skip
        # Boxes: 2 GT and 2 predictions per row, with their matches.
        n_obj = 2 * n_rows
        obj_rows = np.repeat(ids, 2)
        obj_cls = np.asarray(class_ids)[rng.integers(0, n_classes, n_obj)]
        oid = np.arange(1, n_obj + 1)
        box = rng.uniform(0, 300, (n_obj, 4))
        _copy(conn, "annotations", ["id", "workspace_id", "data_row_id", "class_id", "x", "y", "w", "h", "area"],
              _csv([oid, np.full(n_obj, ws), obj_rows, obj_cls, *box.T, box[:, 2] * box[:, 3]],
                   ["%d", "%d", "%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f"]))  # fmt: skip
        cur.execute("SELECT setval('annotations_id_seq', %s)", (n_obj,))
        conf = rng.uniform(0.05, 1.0, n_obj)
        _copy(conn, "predictions", ["model_run_id", "id", "data_row_id", "class_id", "x", "y", "w", "h", "confidence"],
              _csv([np.full(n_obj, run), oid, obj_rows, obj_cls, *box.T, conf],
                   ["%d", "%d", "%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.4f"]))  # fmt: skip
        tp = rng.random(n_obj) < 0.6
        err = np.where(tp, "", np.where(rng.random(n_obj) < 0.5, "bkg", "loc"))
        _copy(conn, "object_matches", ["model_run_id", "kind", "object_id", "data_row_id", "class_id", "confidence",
                                       "status", "iou", "error_type", "tp_mask"],
              _csv([np.full(n_obj, run), np.full(n_obj, "pred"), oid, obj_rows, obj_cls, conf,
                    np.where(tp, "TP", "FP"), rng.uniform(0, 1, n_obj), err, np.where(tp, 1, 0)],
                   ["%d", "%s", "%d", "%d", "%d", "%.4f", "%s", "%.4f", "%s", "%d"]))  # fmt: skip
        _copy(conn, "object_matches", ["model_run_id", "kind", "object_id", "data_row_id", "class_id", "status",
                                       "error_type", "tp_mask"],
              _csv([np.full(n_obj, run), np.full(n_obj, "gt"), oid, obj_rows, obj_cls, np.where(tp, "TP", "FN"),
                    np.where(tp, "", "miss"), np.where(tp, 1, 0)],
                   ["%d", "%s", "%d", "%d", "%d", "%s", "%s", "%d"]))  # fmt: skip
        conn.commit()
    load_s = time.perf_counter() - t0
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, ddl in indexes:
            conn.execute(ddl)
        index_s = time.perf_counter() - t0 - load_s
        conn.execute("VACUUM ANALYZE")
    return {"workspace_id": ws, "run_id": run, "class_ids": class_ids, "n_rc": len(rows_rc), "load_s": load_s,
            "index_s": index_s, "total_s": time.perf_counter() - t0}  # fmt: skip


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


async def deep_cursor(
    client: httpx.AsyncClient, h: dict[str, str], run: int, body: dict[str, Any], url: str
) -> str | None:
    """A cursor in the middle of the ordering: follow pages of 200, 25 times."""
    cursor = None
    for _ in range(25):
        r = (
            await client.post(
                f"/v1/runs/{run}/gallery", json={**body, "limit": 200, "cursor": cursor}, headers=h
            )
        ).json()
        cursor = r["next_cursor"]
        if cursor is None:
            break
    return cursor


async def bench(url: str, info: dict[str, Any], repeats: int) -> list[tuple[str, str, float, float, float]]:
    from services.gateway.main import create_app

    settings = Settings(
        database=DatabaseSettings(url=url, pool_size=10),
        gateway=GatewaySettings(bootstrap_token=BOOTSTRAP, web_dir=Path("/nonexistent")),  # type: ignore[arg-type]
        log_level="WARNING",
    )
    app = create_app(settings)
    out = []
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=120) as client,
    ):
        r = await client.post("/v1/workspaces", json={"name": f"bench-{uuid.uuid4().hex[:6]}"},
                                  headers={"X-Bootstrap-Token": BOOTSTRAP})  # fmt: skip
        # the data lives in workspace info["workspace_id"]: give it a key through the API's own table
        key = r.json()["api_key"]
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(
                "UPDATE api_keys SET workspace_id = %s WHERE id = %s", (info["workspace_id"], key["id"])
            )
        h = {"Authorization": f"Bearer {key['key']}"}
        run = info["run_id"]
        c0 = "class0"
        c3 = "class3"

        async def timed(fn: Any) -> list[float]:
            await fn()  # warm
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                resp = await fn()
                ts.append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200, resp.text
            return ts

        anchor = await timed(lambda: client.get("/v1/me", headers=h))
        out.append(("anchor", "GET /v1/me", pct(anchor, 0.5), pct(anchor, 0.95), 0.0))
        pages = {
                "iou<0.7 sort iou asc": {"filter": {"all": [{"field": "iou", "op": "lt", "value": 0.7}]},
                                         "sort": {"field": "iou", "order": "asc"}},
                "fp>0 sort confidence asc": {"filter": {"all": [{"field": "fp", "op": "gt", "value": 0}]},
                                             "sort": {"field": "confidence", "order": "asc"}},
                "recall<0.5 sort recall desc": {"filter": {"all": [{"field": "recall", "op": "lt", "value": 0.5}]},
                                                "sort": {"field": "recall", "order": "desc"}},
                "split=validation, f1<=0.5 sort f1": {
                    "filter": {"all": [{"field": "split", "op": "eq", "value": "validation"},
                                       {"field": "f1", "op": "lte", "value": 0.5}]},
                    "sort": {"field": "f1", "order": "asc"}},
                f"recall[{c0}] in [0.2,0.6) sort recall[{c0}]": {
                    "filter": {"all": [{"field": "recall", "class_name": c0, "op": "gte", "value": 0.2},
                                       {"field": "recall", "class_name": c0, "op": "lt", "value": 0.6}]},
                    "sort": {"field": "recall", "class_name": c0, "order": "asc"}},
                f"precision[{c3}]<0.6 sort precision[{c3}] desc": {
                    "filter": {"all": [{"field": "precision", "class_name": c3, "op": "lt", "value": 0.6}]},
                    "sort": {"field": "precision", "class_name": c3, "order": "desc"}},
                f"fn[{c0}]>0 sort iou asc": {
                    "filter": {"all": [{"field": "fn", "class_name": c0, "op": "gt", "value": 0}]},
                    "sort": {"field": "iou", "order": "asc"}},
            }  # fmt: skip
        for name, body in pages.items():
            first = await timed(
                lambda body=body: client.post(
                    f"/v1/runs/{run}/gallery", json={**body, "limit": 50}, headers=h
                )
            )
            out.append(
                (
                    "page (first)",
                    name,
                    pct(first, 0.5),
                    pct(first, 0.95),
                    pct(first, 0.5) / pct(anchor, 0.5),
                )
            )
            cur = await deep_cursor(client, h, run, body, "")
            if cur:
                deep = await timed(
                    lambda body=body, cur=cur: client.post(
                        f"/v1/runs/{run}/gallery", json={**body, "limit": 50, "cursor": cur}, headers=h
                    )
                )
                out.append(
                    (
                        "page (deep, ~5000 in)",
                        name,
                        pct(deep, 0.5),
                        pct(deep, 0.95),
                        pct(deep, 0.5) / pct(anchor, 0.5),
                    )
                )
        # Histogram anchor: the bare SQL count(*) of the run's rows (the floor of any pass over them).
        with psycopg.connect(libpq, autocommit=True) as conn:

            async def count_all() -> Any:
                conn.execute("SELECT count(*) FROM row_metrics WHERE model_run_id = %s", (run,)).fetchone()
                return httpx.Response(200)

            scan = await timed(count_all)
        out.append(("anchor", "SQL count(*) of the run's rows", pct(scan, 0.5), pct(scan, 0.95), 0.0))
        hists = {
            "recall (all rows)": {"metric": "recall"},
            "iou split=test": {"metric": "iou", "split": "test"},
            "fp (counts)": {"metric": "fp"},
            f"recall[{c0}]": {"metric": "recall", "class_name": c0},
            f"precision[{c3}] split=validation": {
                "metric": "precision",
                "class_name": c3,
                "split": "validation",
            },
        }
        for name, params in hists.items():
            ts = await timed(
                lambda params=params: client.get(
                    f"/v1/runs/{run}/metrics/histogram", params=params, headers=h
                )
            )
            out.append(("histogram", name, pct(ts, 0.5), pct(ts, 0.95), pct(ts, 0.5) / pct(scan, 0.5)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per query")
    ap.add_argument("--db", default="blindspot_bench")
    ap.add_argument("--reuse", action="store_true", help="time an existing --db without rebuilding it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    url = make_url(get_settings().database.url).set(database=args.db).render_as_string(hide_password=False)
    if args.reuse:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            ws, run = conn.execute("SELECT workspace_id, id FROM model_runs ORDER BY id LIMIT 1").fetchone()  # type: ignore[misc]
        info = {"workspace_id": ws, "run_id": run, "n_rc": None, "load_s": 0.0, "total_s": 0.0}
    else:
        print(f"building {args.rows:,} rows x {args.classes} classes in {args.db} ...", flush=True)
        info = build(url, args.rows, args.classes, args.seed)
        print(f"COPY {info['load_s']:.1f} s, gallery indexes {info['index_s']:.1f} s, with VACUUM ANALYZE "
              f"{info['total_s']:.1f} s total; "
              f"{info['n_rc']:,} (row, class) metric rows", flush=True)  # fmt: skip
    results = asyncio.run(bench(url, info, args.repeats))
    print(f"\n{'kind':<24}{'query':<48}{'p50 ms':>9}{'p95 ms':>9}{'x anchor':>10}  goal")
    for kind, name, p50, p95, ratio in results:
        goal = ""
        if kind.startswith("page"):
            goal = "ok (<= 50 ms)" if p95 <= 50 else "MISSED (> 50 ms)"
        elif kind == "histogram":
            goal = "ok (<= 200 ms)" if p95 <= 200 else "MISSED (> 200 ms)"
        print(f"{kind:<24}{name:<48}{p50:>9.1f}{p95:>9.1f}{ratio:>10.1f}  {goal}")
    pages = [r for r in results if r[0].startswith("page")]
    hists = [r for r in results if r[0] == "histogram"]
    print(
        f"\nworst page p95 {max(r[3] for r in pages):.1f} ms; worst histogram p95 {max(r[3] for r in hists):.1f} ms"
    )


if __name__ == "__main__":
    main()
