"""Inference worker death, at scale (issue 10, item 1): 20 kill -9 at random moments, nothing lost.

    .venv/bin/python benchmarks/reliability_worker_death.py                  # 20 kills, 4 rounds of 5
    .venv/bin/python benchmarks/reliability_worker_death.py --kills 40 --images 60

Needs Postgres, Redis (DB 15, a key prefix per round) and the demo detector ONNX; starts its own SeaweedFS
and its own database (dropped at the end). Each round is a fresh model run over the same images: every
chunk is sent as an ``inference.run`` task to a real worker subprocess, which is SIGKILLed (main process
and pool child) ``kills/rounds`` times while it holds a task and restarted. The last round also sends
every task twice. Printed per round: kills, kills that hit a held task, seconds, predictions, rows lost,
predictions duplicated, and the anchor: the same chunks undisturbed in-process (seconds, predictions).
Exit status 1 if any round's predictions differ from the anchor's.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from blindspot.stack import seaweed
from shared.adapters.storage import ObjectStore
from shared.db import migrate
from shared.logging import configure_logging
from shared.settings import S3Settings
from tests.integration.reliability import inference_chaos as chaos


def _database(url: str, *, drop: bool = False) -> None:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        if not drop:
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    if not drop:
        migrate.upgrade(url)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--database-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/bs_bench_chaos_{uuid.uuid4().hex[:6]}",
    )
    args = p.parse_args(argv)
    configure_logging("WARNING")
    db_url = args.database_url
    _database(db_url)
    work = Path(tempfile.mkdtemp(prefix="bs-chaos-"))
    access, secret = "blindspot-bench", secrets.token_urlsafe(24)
    handle = seaweed.start(work / "seaweedfs", seaweed.free_port(), access, secret)
    s3 = S3Settings(endpoint=handle.endpoint, access_key=access, secret_key=SecretStr(secret), bucket="chaos")
    failed = False
    try:
        store = ObjectStore(s3)
        store.ensure_bucket()
        seeded = chaos.seed_images(db_url, store, args.images, seed=args.seed)
        t0 = time.monotonic()
        want = chaos.reference(db_url, s3, chaos.new_run(db_url, seeded.workspace_id, "ref"), seeded.row_ids)
        ref_s = time.monotonic() - t0
        n_chunks = len(chaos.chunks(seeded.row_ids, chaos.INFERENCE.task_rows))
        print(
            f"anchor (undisturbed, in-process): {len(seeded.row_ids)} images, {n_chunks} chunks,"
            f" {len(want)} predictions in {ref_s:.1f} s"
        )
        rnd = random.Random(args.seed)
        per_round = [args.kills // args.rounds + (i < args.kills % args.rounds) for i in range(args.rounds)]
        total_kills = total_holding = 0
        for i, kills in enumerate(per_round):
            run = chaos.new_run(db_url, seeded.workspace_id, f"chaos{i}")
            copies = 2 if i == len(per_round) - 1 else 1
            res = chaos.chaos_round(
                db_url, s3, run, seeded.row_ids, kills=kills, rnd=rnd, copies=copies, log=work / "worker.log"
            )
            got = chaos.predictions(db_url, run)
            dup = sum(n - 1 for n in Counter(got).values() if n > 1)
            lost_rows = len({q[0] for q in want} - {q[0] for q in got})
            same = got == want
            failed |= not same
            total_kills += res.kills
            total_holding += res.kills_holding_a_task
            print(
                f"round {i}: {res.kills} kills ({res.kills_holding_a_task} holding a task), {res.tasks_sent} tasks"
                f" (x{copies}), {res.seconds:.1f} s ({res.seconds / max(ref_s, 1e-9):.1f}x anchor),"
                f" {len(got)} predictions, rows lost {lost_rows}, duplicated {dup}, equal to anchor: {same}"
            )
        print(
            f"total: {total_kills} kills survived ({total_holding} while holding a task);"
            f" {'ALL ROUNDS EQUAL' if not failed else 'MISMATCH'}"
        )
    finally:
        handle.stop()
        _database(db_url, drop=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
