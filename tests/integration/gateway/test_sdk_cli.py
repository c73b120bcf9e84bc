"""The SDK and the CLI over real HTTP (uvicorn on loopback) against the same API."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blindspot.cli import app as cli
from blindspot.sdk import ApiError, Client
from tests.fixtures.gateway import BOOTSTRAP, World

pytestmark = pytest.mark.integration


def test_sdk_gallery_drilldown_and_errors(gateway_url: str, world: World) -> None:
    run = world.runs[0]
    with Client(gateway_url, world.ws.read) as bs:
        assert bs.me()["workspace_id"] == world.ws.id
        assert {r["id"] for r in bs.runs()} == {r.id for r in world.runs}
        rows = list(bs.iter_gallery(run.id, page_size=7, sort={"field": "iou", "order": "asc"}))
        assert len(rows) == len(run.row_ids)
        hist = bs.histogram(run.id, "recall", class_name="person")
        bucket = next(b for b in hist["buckets"] if b["count"])
        assert bs.gallery(run.id, filter=bucket["filter"], include_total=True)["total"] == bucket["count"]
        with pytest.raises(ApiError) as exc:
            bs.gallery(run.id, filter={"all": [{"field": "recal", "op": "lt", "value": 1}]})
        assert exc.value.status == 400 and exc.value.context["field"] == "recal"
        with pytest.raises(ApiError) as exc:
            bs.create_project("nope")
        assert exc.value.status == 403


def test_cli_admin_runs_and_batches(gateway_url: str, world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BLINDSPOT_URL": gateway_url, "BLINDSPOT_API_KEY": world.ws.admin}
    name = f"cli-{uuid.uuid4().hex[:6]}"
    r = runner.invoke(cli, ["admin", "create-workspace", name, "--bootstrap-token", BOOTSTRAP], env=env)
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].startswith("bsk_")
    r = runner.invoke(cli, ["admin", "create-key", "ci", "--scope", "read"], env=env)
    assert r.exit_code == 0 and r.output.strip().splitlines()[-1].startswith("bsk_")
    r = runner.invoke(cli, ["admin", "keys"], env=env)
    assert r.exit_code == 0 and "ci" in r.output
    run = world.runs[0]
    out = tmp_path / "rows.jsonl"
    r = runner.invoke(cli, ["runs", "gallery", str(run.id), "--filter", '{"all": [{"field": "fn", "op": "gt", "value": 0}]}',
                            "--out", str(out)], env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["data_row_id"] for x in lines) == sorted(
        i for i, m in run.row_metrics.items() if m["fn"] > 0
    )
    r = runner.invoke(cli, ["runs", "histogram", str(run.id), "recall", "--bins", "4"], env=env)
    assert r.exit_code == 0 and "[0.00, 0.25)" in r.output
    r = runner.invoke(
        cli, ["runs", "gallery", str(run.id), "--filter", '{"all": [{"field": "bogus"}]}'], env=env
    )
    assert r.exit_code == 1 and "bogus" in r.output
    r = runner.invoke(cli, ["batches", "create-project", f"p-{name}"], env=env)
    assert r.exit_code == 0, r.output
    project_id = r.output.split()[1]
    r = runner.invoke(cli, ["batches", "create", project_id, "b1", "--ids", ",".join(map(str, world.row_ids[:3])),
                            "--run-id", str(run.id), "--idempotency-key", name], env=env)  # fmt: skip
    assert r.exit_code == 0 and "added 3 rows" in r.output, r.output
    batch_id = r.output.split()[1]
    export = tmp_path / "ls.json"
    r = runner.invoke(cli, ["batches", "export", batch_id, str(export)], env=env)
    assert r.exit_code == 0 and len(json.loads(export.read_text())) == 3
