"""Ingest throughput, measured against its own anchors in one run on one machine.

1. Images/s through the full path (HTTP streaming upload -> decode/verify -> WebP thumbnail -> S3 put of
   original + thumbnail -> multi-row upsert in Postgres -> commit -> follow-up tasks), next to the raw
   limit (the same decode + thumbnail + S3 puts in a thread pool, no service in between). Goal >= 0.7.
2. Prediction boxes/s imported through POST /v1/runs/{id}/predictions (COCO results JSON: upload,
   parse, validate, binary COPY, commit). Goal >= 100,000 boxes/s.

Real servers: SeaweedFS (started here on a free port), the local Postgres (a scratch database), Redis,
and the ingest service under uvicorn in a subprocess.

    .venv/bin/python benchmarks/ingest.py                 # modest sizes (about a minute)
    .venv/bin/python benchmarks/ingest.py --images 2000 --boxes 1000000
    .venv/bin/python benchmarks/ingest.py --database my_bench --redis-db 11   # next to other runs
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from blindspot.stack import seaweed  # noqa: E402
from services.ingest.domain import ImageLimits, check_image, object_key, thumbnail_key  # noqa: E402
from shared.adapters.storage import ObjectStore  # noqa: E402
from shared.db import migrate  # noqa: E402
from shared.internal_auth import internal_headers  # noqa: E402
from shared.settings import S3Settings, get_settings  # noqa: E402


def make_images(n: int, w: int, h: int, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (smooth gradients + noise), each different."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = np.stack(
            [(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, ((xx + yy) // 3 + i) % 256], axis=-1
        )
        noise = rng.integers(0, 40, size=(h, w, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def raw_limit(images: list[bytes], store: ObjectStore, limits: ImageLimits, workers: int) -> float:
    """Decode + verify + thumbnail + two S3 puts per image, thread pool, no service. Returns images/s."""

    def work(i_data: tuple[int, bytes]) -> None:
        i, data = i_data
        img = check_image(f"raw-{i}.jpg", data, limits)
        store.put(object_key(999_999, img.sha256), img.data, img.media_type)
        store.put(thumbnail_key(999_999, img.sha256, limits.thumbnail_px), img.thumbnail, "image/webp")

    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(work, enumerate(images)))
        return len(images) / (time.perf_counter() - t0)


def tar_stream(files: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def cpu_seconds(pids: list[int]) -> float:
    """user+system CPU seconds of these processes (Linux /proc), 0 for any that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def backend_pids(engine: Engine) -> list[int]:
    """Postgres backends serving the benchmark database (the service's pool connections)."""
    with engine.connect() as conn:
        return [
            int(p)
            for (p,) in conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        ]


def wal_lsn(engine: Engine) -> int:
    """Bytes of WAL the Postgres server has written so far, all databases (write work, not CPU share)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")).scalar_one())


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the ingest service at {url} did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300, help="images per measurement")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--boxes", type=int, default=300_000, help="prediction boxes to import")
    ap.add_argument("--rows", type=int, default=5000, help="data rows the predictions spread over")
    ap.add_argument("--batch", type=int, default=100, help="images per streaming request (as the CLI)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw/full rounds")
    ap.add_argument("--parallel", type=int, default=2, help="requests in flight (as the CLI)")
    ap.add_argument("--workers", type=int, default=get_settings().ingest.workers)
    ap.add_argument(
        "--database", default="blindspot_bench_ingest", help="scratch database (dropped at the end)"
    )
    ap.add_argument("--redis-db", type=int, default=None, help="Redis DB number for the follow-up tasks")
    args = ap.parse_args()

    base = get_settings()
    db_url = make_url(base.database.url).set(database=args.database).render_as_string(hide_password=False)
    admin = create_engine(make_url(db_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{args.database}"'))
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        ws = int(
            conn.execute(text("INSERT INTO workspaces (name) VALUES ('bench') RETURNING id")).scalar_one()
        )

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    secret = "bench-secret-0123456789"
    sw = seaweed.start(tmp / "seaweed", seaweed.free_port(), "bench", secret)
    s3 = S3Settings(
        endpoint=sw.endpoint, access_key="bench", secret_key=SecretStr(secret), bucket="bench-ingest"
    )
    store = ObjectStore(s3, max_connections=args.workers * 2 + 4)
    store.ensure_bucket()
    port = seaweed.free_port()
    env = {
        **os.environ,
        "BLINDSPOT_DATABASE__URL": db_url,
        "BLINDSPOT_S3__ENDPOINT": s3.endpoint,
        "BLINDSPOT_S3__ACCESS_KEY": s3.access_key,
        "BLINDSPOT_S3__SECRET_KEY": secret,
        "BLINDSPOT_S3__BUCKET": s3.bucket,
        "BLINDSPOT_INGEST__WORKERS": str(args.workers),
        "BLINDSPOT_INGEST__ASYNC_IMPORT_BYTES": str(2**40),
        "BLINDSPOT_LOG_LEVEL": "WARNING",
    }
    if args.redis_db is not None:
        env["BLINDSPOT_REDIS__URL"] = urlsplit(base.redis.url)._replace(path=f"/{args.redis_db}").geturl()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.ingest.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        limits = ImageLimits(
            max_bytes=base.limits.max_image_bytes,
            max_pixels=base.limits.max_image_pixels,
            thumbnail_px=base.ingest.thumbnail_px,
            thumbnail_quality=base.ingest.thumbnail_quality,
        )
        print(f"generating {2 * args.images} {args.width}x{args.height} JPEGs ...", flush=True)
        raw_imgs = make_images(args.images, args.width, args.height, seed=1)
        svc_imgs = make_images(args.images, args.width, args.height, seed=2)
        raw_limit(raw_imgs[: min(20, len(raw_imgs))], store, limits, args.workers)  # warm-up

        headers = internal_headers(ws)
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            ds = client.post("/v1/datasets", json={"name": "bench"}).json()["id"]
            warm = [(f"warm/{i}.jpg", d) for i, d in enumerate(raw_imgs[:20])]
            client.post(f"/v1/datasets/{ds}/rows:stream", content=tar_stream(warm)).raise_for_status()

            def send(part: list[tuple[str, bytes]]) -> None:
                def body() -> Iterator[bytes]:
                    data = tar_stream(part)
                    for i in range(0, len(data), 1 << 20):
                        yield data[i : i + (1 << 20)]

                r = client.post(f"/v1/datasets/{ds}/rows:stream", content=body())
                r.raise_for_status()
                assert r.json()["created"] == len(part), r.text

            # Alternate raw and full rounds so that load drifting on the machine hits both alike.
            raw_s = full_s = 0.0
            per_round = -(-len(svc_imgs) // args.rounds)
            for k in range(args.rounds):
                lo, hi = k * per_round, min((k + 1) * per_round, len(svc_imgs))
                t0 = time.perf_counter()
                raw_limit(raw_imgs[lo:hi], store, limits, args.workers)
                raw_s += time.perf_counter() - t0
                names = [(f"bench/{i:06d}.jpg", svc_imgs[i]) for i in range(lo, hi)]
                parts = [names[j : j + args.batch] for j in range(0, len(names), args.batch)]
                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.parallel) as senders:
                    list(senders.map(send, parts))
                full_s += time.perf_counter() - t0
                print(
                    f"round {k + 1}/{args.rounds}: raw {raw_s:.1f} s, full {full_s:.1f} s so far", flush=True
                )
            raw = len(raw_imgs) / raw_s
            full = len(svc_imgs) / full_s

            # ---- predictions: rows exist (inserted directly, not timed), then one COCO results import
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO data_rows (workspace_id, dataset_id, global_key, object_key, width, height,"
                        " sha256, metadata) SELECT :ws, :ds, 'pred/' || g || '.jpg', 'x', 1280, 720, md5(g::text),"
                        " jsonb_build_object('coco_image_id', g) FROM generate_series(1, :n) g"
                    ),
                    {"ws": ws, "ds": ds, "n": args.rows},
                )
            client.post(
                "/v1/classes", json={"classes": [{"name": f"c{i}", "external_id": i} for i in range(80)]}
            )
            run = client.post("/v1/runs", json={"name": "bench", "version": "1"}).json()["id"]
            rng = np.random.default_rng(3)
            n = args.boxes
            xy = np.stack([rng.uniform(0, 1200, n), rng.uniform(0, 700, n)], axis=1).round(2)
            wh = rng.uniform(1, 200, size=(n, 2)).round(2)
            img_ids = rng.integers(1, args.rows + 1, size=n)
            cats = rng.integers(0, 80, size=n)
            scores = rng.uniform(0, 1, size=n).round(4)
            doc = [
                {
                    "image_id": int(img_ids[i]),
                    "category_id": int(cats[i]),
                    "bbox": [float(xy[i, 0]), float(xy[i, 1]), float(wh[i, 0]), float(wh[i, 1])],
                    "score": float(scores[i]),
                }
                for i in range(n)
            ]
            payload = orjson.dumps(doc)
            wal0 = wal_lsn(engine)
            before = [server.pid, *backend_pids(engine)]
            cpu0 = cpu_seconds(before)
            svc0 = cpu_seconds([server.pid])
            t0 = time.perf_counter()
            r = client.post(
                f"/v1/runs/{run}/predictions",
                params={"format": "coco", "dataset_id": ds},
                files={"file": ("results.json", payload)},
            )
            elapsed = time.perf_counter() - t0
            # Backends opened during the import count in full (they started at 0).
            cpu = cpu_seconds(sorted({*before, *backend_pids(engine)})) - cpu0
            svc_cpu = cpu_seconds([server.pid]) - svc0
            wal_mb = (wal_lsn(engine) - wal0) / 1e6
            if r.status_code != 201:
                raise RuntimeError(f"prediction import failed: {r.status_code} {r.text[:500]}")
            assert r.json()["result"]["boxes"] == n, r.text
            boxes_s = n / elapsed
            phases = r.json()["result"]["seconds"]
            with engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT count(*) FROM predictions WHERE model_run_id = :r"), {"r": run}
                ).scalar()
            assert stored == n
    finally:
        server.terminate()
        server.wait(timeout=30)
        sw.stop()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
        admin.dispose()

    print()
    print(
        f"load average during the run: {os.getloadavg()[0]:.1f} (other work on the machine skews both anchors)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs; images {args.width}x{args.height} JPEG (~{len(svc_imgs[0]) // 1024} KiB),"
        f" {args.workers} worker threads"
    )
    print(f"raw limit (decode+verify+thumbnail+2 S3 puts, no service): {raw:8.1f} images/s")
    print(f"full path (HTTP stream -> service -> S3 + rows + thumbnails): {full:8.1f} images/s")
    print(f"ratio full/raw: {full / raw:.2f}   (goal >= 0.70: {'MET' if full / raw >= 0.7 else 'NOT MET'})")
    print(
        f"prediction import (COCO results, {n} boxes over {args.rows} rows, {len(payload) / 1e6:.1f} MB):"
        f" {boxes_s:,.0f} boxes/s in {elapsed:.2f} s   (goal >= 100,000: {'MET' if boxes_s >= 100_000 else 'NOT MET'})"
    )
    print(f"  server-side phases (s): {phases}; the rest is HTTP upload + multipart parsing")
    print(
        f"  CPU time of the service process ({svc_cpu:.2f} s) + its Postgres backends ({cpu - svc_cpu:.2f} s)"
        f" for the import: {cpu:.2f} s ->"
        f" {n / cpu:,.0f} boxes per CPU-second (what one idle core sustains; the wall figure above"
        " includes waiting for CPUs taken by other work)"
    )
    print(
        f"  WAL written by the server during the import: {wal_mb:.0f} MB (other databases' writes included)"
    )


if __name__ == "__main__":
    main()
