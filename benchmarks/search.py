"""Filtered top-k similarity: latency (p50/p95) and recall@k of each vector backend, next to an exact
numpy scan of the same vectors in the same run (the anchor every ratio is against).

    .venv/bin/python benchmarks/search.py                      # 20k vectors, quick
    .venv/bin/python benchmarks/search.py --n 100000           # the issue's size
    .venv/bin/python benchmarks/search.py --qdrant-url http://127.0.0.1:6333   # + a Qdrant server

Data: ``--n`` unit vectors of 1280 dims drawn around 200 cluster centres (embeddings cluster; uniform
random vectors would be the worst case for HNSW), 2 workspaces (90/10), 8 datasets, a labeled flag.
Each query is a perturbed data vector; the filter is the product's common one: workspace 1, unlabeled
rows (``annotation: none``), ~45% of the points. ``--selective`` adds one dataset (~5%).
Also prints the embedder's throughput (ONNX Runtime, CPU) on a batch of real photos.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.adapters.vectors import Cond, VectorFilter, VectorStore, open_vector_store
from shared.settings import QdrantSettings, Settings

DIM = 1280
INDEXES: dict[str, Any] = {"workspace_id": "integer", "dataset_id": "integer", "labeled": "integer"}


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + 0.9 * rng.normal(size=(n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ws = np.where(rng.random(n) < 0.9, 1, 2)
    ds = rng.integers(0, 8, n)
    labeled = (rng.random(n) < 0.5).astype(np.int64)
    return x, ws, ds, labeled


def queries(x: np.ndarray, q: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    v = x[rng.integers(0, len(x), q)] + 0.5 * rng.normal(size=(q, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def pct(a: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(a) * 1000, p))


def numpy_scan(x: np.ndarray, mask: np.ndarray, qs: np.ndarray, k: int) -> tuple[list[set[int]], list[float]]:
    """Exact filtered top-k: the ground truth and the anchor timing."""
    ids = np.nonzero(mask)[0]
    sub = x[ids]
    truth, times = [], []
    for q in qs:
        t0 = time.perf_counter()
        s = sub @ q
        top = np.argpartition(-s, k)[:k]
        top = top[np.argsort(-s[top])]
        times.append(time.perf_counter() - t0)
        truth.append({int(ids[i]) + 1 for i in top})
    return truth, times


def load(
    store: VectorStore,
    x: np.ndarray,
    ws: np.ndarray,
    ds: np.ndarray,
    labeled: np.ndarray,
    batch: int,
    optimize: bool = True,
) -> float:
    t0 = time.perf_counter()
    store.ensure_collection("bench", DIM, INDEXES)
    for i in range(0, len(x), batch):
        j = min(i + batch, len(x))
        payloads = [
            {
                "workspace_id": int(ws[r]),
                "dataset_id": int(ds[r]),
                "labeled": int(labeled[r]),
                "data_row_id": r + 1,
            }
            for r in range(i, j)
        ]
        store.upsert("bench", list(range(i + 1, j + 1)), x[i:j], payloads)
    if optimize:
        store.optimize("bench")
    return time.perf_counter() - t0


def run_store(
    store: VectorStore, flt: VectorFilter, qs: np.ndarray, k: int, truth: list[set[int]]
) -> tuple[list[float], float]:
    store.search("bench", qs[0], workspace_id=1, filter=flt, limit=k)  # warm-up
    times, recalls = [], []
    for q, t in zip(qs, truth, strict=True):
        t0 = time.perf_counter()
        hits = store.search("bench", q, workspace_id=1, filter=flt, limit=k)[0]
        times.append(time.perf_counter() - t0)
        recalls.append(len({int(h.id) for h in hits} & t) / k)
    return times, float(np.mean(recalls))


def embed_throughput(n_images: int) -> float | None:
    try:
        from skimage import data

        from services.search.domain import to_tensor
        from services.search.embedder import OnnxEmbedder
    except ImportError:
        return None
    from PIL import Image

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    batch = np.stack([to_tensor(Image.fromarray(photos[i % 4])) for i in range(n_images)])
    emb = OnnxEmbedder(Settings().models.embedder_onnx)
    emb.embed(batch[:2])
    t0 = time.perf_counter()
    for i in range(0, n_images, 16):
        emb.embed(batch[i : i + 16])
    return n_images / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backends",
        default="memory,edge",
        help="comma list of: memory (qdrant-client local mode in RAM), local (its on-disk mode: slow loads), edge",
    )
    p.add_argument("--local-queries", type=int, default=20, help="queries for local mode (slow past 20k)")
    p.add_argument("--qdrant-url", default=None, help="also measure a Qdrant server")
    p.add_argument("--selective", action="store_true", help="filter on one dataset too (~5% of points)")
    p.add_argument("--embed-images", type=int, default=64)
    p.add_argument(
        "--no-optimize", action="store_true", help="measure Edge before its HNSW build (plain segments)"
    )
    args = p.parse_args()

    x, ws, ds, labeled = make_data(args.n, args.seed)
    qs = queries(x, args.queries, args.seed)
    must = [Cond("labeled", (0,))]
    mask = (ws == 1) & (labeled == 0)
    if args.selective:
        must.append(Cond("dataset_id", (3,)))
        mask &= ds == 3
    flt = VectorFilter(must=tuple(must))
    print(
        f"{args.n} vectors x {DIM} dims, filter keeps {mask.mean():.1%}, top-{args.k}, {args.queries} queries"
    )
    truth, np_times = numpy_scan(x, mask, qs, args.k)
    anchor = pct(np_times, 50)
    rows: list[tuple[str, float, float, float, float, float]] = [
        ("numpy exact scan", 0.0, anchor, pct(np_times, 95), 1.0, 1.0)
    ]

    targets: list[tuple[str, str, Any]] = [(b, b, None) for b in args.backends.split(",") if b]
    if args.qdrant_url:
        targets.append(("server", "server", args.qdrant_url))
    for label, backend, url in targets:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
        try:
            settings = QdrantSettings(path=tmp, url=url)
            store = open_vector_store(settings, backend=backend)
            if backend == "server":
                store._client.delete_collection("bench")  # type: ignore[attr-defined]
            n_q = args.local_queries if backend in ("local", "memory") else args.queries
            load_s = load(store, x, ws, ds, labeled, 1000, optimize=not args.no_optimize)
            times, recall = run_store(store, flt, qs[:n_q], args.k, truth[:n_q])
            rows.append(
                (f"qdrant {label}", load_s, pct(times, 50), pct(times, 95), recall, pct(times, 50) / anchor)
            )
            store.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"{'backend':<22}{'load s':>9}{'p50 ms':>10}{'p95 ms':>10}{'recall@' + str(args.k):>11}{'p50/numpy':>11}"
    )
    for name, load_s, p50, p95, rec, ratio in rows:
        print(f"{name:<22}{load_s:>9.1f}{p50:>10.2f}{p95:>10.2f}{rec:>11.3f}{ratio:>11.2f}")
    if args.embed_images:
        ips = embed_throughput(args.embed_images)
        if ips:
            print(f"embedder (ONNX Runtime CPU, batch 16): {ips:.1f} images/s")


if __name__ == "__main__":
    main()
