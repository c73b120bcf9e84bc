"""``blindspot data`` against the ingest service running under uvicorn (real HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import Engine
from typer.testing import CliRunner

from blindspot.cli import app as cli
from blindspot.stack.seaweed import free_port
from services.ingest.main import create_app
from shared.settings import Settings
from tests.integration.ingest.boxes import COCO_GT, SIZES, gt_state, pred_state
from tests.integration.ingest.conftest import image_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingest_url(ingest_settings: Settings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ingest_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_upload_folder_import_and_runs(
    ingest_url: str, workspace: int, engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    for key, (w, h) in SIZES.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(image_bytes(w, h))
    (folder / "notes.txt").write_text("not an image, skipped")
    common = ["--url", ingest_url, "--workspace", str(workspace)]
    runner = CliRunner()
    r = runner.invoke(cli, ["data", "upload", str(folder), "--dataset", "cli", "--batch", "2", *common])
    assert r.exit_code == 0, r.output
    assert "3 created" in r.output
    again = runner.invoke(cli, ["data", "upload", str(folder), "--dataset", "cli", *common])
    assert "3 unchanged" in again.output

    gt = tmp_path / "instances.json"
    gt.write_bytes(orjson.dumps(COCO_GT))
    r = runner.invoke(cli, ["data", "import-annotations", str(gt), "-d", "cli", "-f", "coco", *common])
    assert r.exit_code == 0, r.output
    assert "succeeded" in r.output
    ds = httpx.get(f"{ingest_url}/v1/datasets", headers=_headers(workspace)).json()[0]["id"]
    assert len(gt_state(engine, ds)) == 3

    r = runner.invoke(cli, ["data", "create-run", "yolov8n", "--conf", "0.25", *common])
    assert r.exit_code == 0, r.output
    run = int(r.output.strip().splitlines()[-1])
    keys = tmp_path / "keys.txt"
    keys.write_text("img/a.jpg\nimg/b.jpg\n")
    r = runner.invoke(cli, ["data", "assign-split", "--run", str(run), "--split", "test", str(keys), *common])
    assert r.exit_code == 0 and "2 rows" in r.output, r.output
    preds = tmp_path / "preds.ndjson"
    preds.write_text(
        '{"name": "person", "dataRow": {"globalKey": "img/a.jpg"}, "bbox": {"top": 1, "left": 2, "height": 3,'
        ' "width": 4}, "confidence": 0.4}\n'
    )
    r = runner.invoke(
        cli, ["data", "import-predictions", str(preds), "--run", str(run), "-f", "labelbox", *common]
    )
    assert r.exit_code == 0, r.output
    assert pred_state(engine, run) == [("img/a.jpg", "person", 2.0, 1.0, 4.0, 3.0, 0.4)]

    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        '{"name": "person", "dataRow": {"globalKey": "nope.jpg"}, "bbox": {"top": 1, "left": 2, "height": 3, "width": 4}}\n'
    )
    r = runner.invoke(
        cli, ["data", "import-predictions", str(bad), "--run", str(run), "-f", "labelbox", *common]
    )
    assert r.exit_code == 1
    assert "nope.jpg" in r.output


def _headers(workspace: int) -> dict[str, str]:
    from shared.internal_auth import internal_headers

    return internal_headers(workspace)
