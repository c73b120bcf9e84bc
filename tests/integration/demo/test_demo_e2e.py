"""`make demo` end to end: `blindspot stack up` (every service and worker as a real process), `blindspot
demo`, the results read back through the SDK, a second `demo` that reuses everything, `blindspot stack
down` leaving no process behind.

The stack is this test's own: spare ports for the five services, its own redis-server and SeaweedFS
(started by the stack on spare ports), its own database on the test Postgres server, its own Qdrant
folder and stack directory; a developer's stack or another test is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from blindspot.sdk import Client
from blindspot.stack.runner import SERVICES
from blindspot.stack.state import pid_alive
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
IMAGES = 40  # 32 labeled rows in the run, 8 unlabeled in the catalog
SERVER_URL = os.environ.get(
    "BLINDSPOT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/blindspot_test"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    env: dict[str, str]
    dir: Path
    ports: dict[str, int]
    gateway: str

    def cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "blindspot"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
        )

    def started_pids(self) -> dict[str, int]:
        path = self.dir / "state.json"
        return {k: int(v["pid"]) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def _group_members(pgid: int) -> list[int]:
    """Processes of a process group (honcho's: every service and worker)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("demo-stack")
    db = make_url(SERVER_URL).set(database=f"blindspot_demo_e2e_{uuid.uuid4().hex[:8]}")
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDSPOT_")}
    env.update(
        {
            **{f"BLINDSPOT_SERVICES__{n.upper()}": f"http://127.0.0.1:{p}" for n, p in ports.items()},
            "BLINDSPOT_STACK_DIR": str(root / "stack"),
            "BLINDSPOT_DATABASE__URL": db.render_as_string(hide_password=False),
            "BLINDSPOT_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
            "BLINDSPOT_S3__ENDPOINT": f"127.0.0.1:{free_port()}",
            "BLINDSPOT_S3__SECRET_KEY": "demo-e2e-secret-key",
            "BLINDSPOT_QDRANT__PATH": str(root / "qdrant"),
            "BLINDSPOT_LOG_LEVEL": "WARNING",
        }
    )
    s = Stack(env=env, dir=root / "stack", ports=ports, gateway=f"http://127.0.0.1:{ports['gateway']}")
    try:
        yield s
    finally:
        if s.started_pids():  # the test failed before its own `stack down`
            s.cli("stack", "down", timeout=120)
        admin = create_engine(make_url(SERVER_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db.database}" WITH (FORCE)'))
        admin.dispose()


def _logs(s: Stack) -> str:
    log = s.dir / "logs" / "honcho.log"
    return log.read_text(errors="replace")[-6000:] if log.exists() else "(no honcho log)"


def test_make_demo_end_to_end(stack: Stack) -> None:
    t0 = time.monotonic()
    up = stack.cli("stack", "up", "--timeout", "240", timeout=330)
    assert up.returncode == 0, up.stdout + up.stderr + _logs(stack)
    assert "every /readyz is green" in up.stdout

    # Every service's /readyz is green, each check named and ok.
    for name, port in stack.ports.items():
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, (name, ready.text)
        assert ready.json()["checks"] and all(c["ok"] for c in ready.json()["checks"].values()), name

    demo = stack.cli(
        "demo", "--images", str(IMAGES), "--method", "pca", "--conf", "0.1", "--timeout", "300", timeout=360
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr + _logs(stack)
    key = (stack.dir / "demo_api_key").read_text().strip()
    assert key.startswith("bsk_") and key in demo.stdout
    run_line = next(line for line in demo.stdout.splitlines() if "gallery, lowest IoU first" in line)
    assert f"{stack.gateway}/#/runs/" in run_line and "gallery?sort=mean_iou:asc" in run_line
    assert "mAP@[.5:.95] 0." in demo.stdout and "AP50 0." in demo.stdout
    assert "blindspot stack down" in demo.stdout

    with Client(stack.gateway, key) as bs:
        _check_results(bs)

    # Idempotent: a second run reuses the workspace, key, rows, run, predictions and projection.
    again = stack.cli("demo", "--images", str(IMAGES), "--method", "pca", "--conf", "0.1", timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr + _logs(stack)
    assert "0 created, 0 updated, 40 unchanged" in again.stderr
    assert "not running the detector again" in again.stderr
    assert (stack.dir / "demo_api_key").read_text().strip() == key
    with Client(stack.gateway, key) as bs:
        assert [r["name"] for r in bs.runs()] == ["yolov8n-demo"]

    _stop_and_check_nothing_is_left(stack)
    assert time.monotonic() - t0 < 420


def _check_results(bs: Client) -> None:
    (run,) = bs.runs()
    run_id = int(run["id"])
    n_rows = sum(bs.run(run_id)["rows_per_split"].values())
    assert n_rows == IMAGES * 4 // 5
    assert set(bs.run(run_id)["rows_per_split"]) == {"train", "validation", "test"}

    # Row metrics for every row of the run; predictions in the run.
    rows = list(bs.iter_gallery(run_id, sort={"field": "iou", "order": "asc"}))
    assert len(rows) == n_rows
    assert all(r["metrics"] is not None and r["metrics"]["num_gt"] is not None for r in rows)
    assert sum(r["metrics"]["num_pred"] for r in rows) > 0
    assert any(o["kind"] == "pred" for r in rows for o in r["objects"])

    # Sorted by ascending IoU, rows without an IoU last.
    values = [r["sort_value"] for r in rows]
    present = [v for v in values if v is not None]
    assert present and present == sorted(present)
    assert values == present + [None] * (len(values) - len(present))

    # Per-class metrics with an AP.
    classes = bs.class_metrics(run_id)
    assert any(c["class_id"] != 0 and c["ap"] is not None for c in classes)
    summary = next(c for c in classes if c["class_id"] == 0 and c["split"] == "all")
    assert summary["num_gt"] > 0 and summary["ap"] is not None and 0.0 <= summary["ap50"] <= 1.0

    # Each histogram bucket's count is what its gallery filter returns.
    hist = bs.histogram(run_id, "recall", bins=5)
    assert sum(b["count"] for b in hist["buckets"]) == n_rows
    for bucket in hist["buckets"]:
        page = bs.gallery(run_id, filter=bucket["filter"], include_total=True, limit=1)
        assert page["total"] == bucket["count"], bucket

    # Similarity restricted to unlabeled rows returns only rows without ground truth.
    run_row_ids = {int(r["data_row_id"]) for r in rows}
    worst = [int(r["data_row_id"]) for r in rows[:3]]
    hits = bs.similar(worst, limit=20, filter={"annotation": "none"})["rows"]
    assert hits, "the unlabeled pool has rows similar to the worst rows"
    # The search payloads agree with Postgres: every row without GT (the held-out fifth, and any
    # labeled image whose objects were all too hidden to keep) is found, and nothing else.
    no_gt = {int(r["data_row_id"]) for r in bs.catalog(annotation="none", limit=200)["rows"]}
    assert len(no_gt) >= IMAGES // 5
    assert {int(h["data_row_id"]) for h in hits} == no_gt - set(worst)
    for hit in hits:
        row = bs.row(int(hit["data_row_id"]))
        assert row["num_annotations"] == 0 and not [o for o in row["objects"] if o["kind"] == "gt"], row
    assert not {int(h["data_row_id"]) for h in hits} & {
        int(r["data_row_id"]) for r in rows if r["metrics"]["num_gt"] > 0
    }

    # The demo's own batch exists; a new batch from the similar rows is created, and replayed.
    projects = {p["name"]: p for p in bs.projects()}
    assert "demo-labeling" in projects and bs.batches(int(projects["demo-labeling"]["id"]))
    project = bs.create_project(f"e2e-{uuid.uuid4().hex[:6]}")
    ids = sorted(int(h["data_row_id"]) for h in hits)
    body: dict[str, Any] = {"name": "like-the-worst", "idempotency_key": uuid.uuid4().hex}
    created = bs.create_batch(int(project["id"]), **body, selection={"data_row_ids": ids}, priority=1)
    assert created["replayed"] is False and created["batch"]["id"]
    assert sorted(created["added"]) == ids
    replay = bs.create_batch(int(project["id"]), **body, selection={"data_row_ids": ids}, priority=1)
    assert replay["replayed"] is True and replay["batch"]["id"] == created["batch"]["id"]
    assert not run_row_ids & set(ids)


def _stop_and_check_nothing_is_left(stack: Stack) -> None:
    started = stack.started_pids()
    assert {"honcho"} <= set(started), started
    members = _group_members(started["honcho"])
    assert len(members) >= len(SERVICES), members  # honcho + 5 APIs + 4 workers
    down = stack.cli("stack", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        _group_members(started["honcho"]) or any(pid_alive(p) for p in started.values())
    ):
        time.sleep(0.3)
    left = _group_members(started["honcho"]) + [p for p in started.values() if pid_alive(p)]
    for pid in left:  # do not leak them into the rest of the suite, then fail
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left after `stack down`: {left}"
    for port in stack.ports.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert not stack.started_pids()
