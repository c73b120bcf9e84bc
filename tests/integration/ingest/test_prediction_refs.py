"""The predictions table's references (migration ingest01): checked per statement, same rules as FKs."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from shared.db.partitions import leaf_partition
from tests.integration.ingest.boxes import (
    COCO_GT,
    COCO_RESULTS,
    coco_bytes,
    import_gt,
    import_preds,
    setup_dataset,
)

pytestmark = pytest.mark.integration


async def _seed(client: httpx.AsyncClient) -> tuple[int, int]:
    ds = await setup_dataset(client)
    assert (await import_gt(client, ds, "coco", coco_bytes(COCO_GT))).status_code == 201
    run = (await client.post("/v1/runs", json={"name": "refs"})).json()["id"]
    assert (
        await import_preds(client, run, "coco", coco_bytes(COCO_RESULTS), dataset_id=ds)
    ).status_code == 201
    return ds, run


def _count(engine: Engine, sql: str, **params: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


async def test_insert_with_a_missing_reference_is_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    _, run = await _seed(client)
    cls = _count(engine, "SELECT min(class_id) FROM predictions WHERE model_run_id = :r", r=run)
    row = _count(engine, "SELECT min(data_row_id) FROM predictions WHERE model_run_id = :r", r=run)
    for values, what in (
        ((run, -1, cls), "data row -1"),
        ((run, row, -2), "class -2"),
        ((-3, row, cls), "model run -3"),
    ):
        with pytest.raises(IntegrityError, match=what), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO predictions (model_run_id, data_row_id, class_id, x, y, w, h)"
                    " VALUES (:run, :row, :cls, 0, 0, 1, 1)"
                ),
                dict(zip(("run", "row", "cls"), values, strict=True)),
            )


async def test_deletes_cascade_and_classes_are_restricted(client: httpx.AsyncClient, engine: Engine) -> None:
    ds, run = await _seed(client)
    assert _count(engine, "SELECT count(*) FROM predictions WHERE model_run_id = :r", r=run) == 4
    cls = _count(engine, "SELECT min(class_id) FROM predictions WHERE model_run_id = :r", r=run)
    with pytest.raises(IntegrityError, match="still used by predictions"), engine.begin() as conn:
        conn.execute(text("DELETE FROM annotations WHERE class_id = :c"), {"c": cls})
        conn.execute(text("DELETE FROM classes WHERE id = :c"), {"c": cls})
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM data_rows WHERE dataset_id = :ds AND global_key = 'img/a.jpg'"), {"ds": ds}
        )
    assert _count(engine, "SELECT count(*) FROM predictions WHERE model_run_id = :r", r=run) == 2
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM model_runs WHERE id = :r"), {"r": run})
    assert _count(engine, "SELECT count(*) FROM predictions WHERE model_run_id = :r", r=run) == 0


async def test_the_run_partition_checks_references_as_the_parent_does(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """Ingest COPYs into the run's leaf partition (migration ingest02): the same checks fire there."""
    _, run = await _seed(client)
    with engine.connect() as conn:
        leaf = leaf_partition(conn.connection.driver_connection, "predictions", run)  # type: ignore[arg-type]
        held = (
            conn.execute(
                text("SELECT DISTINCT tableoid::regclass::text FROM predictions WHERE model_run_id = :r"),
                {"r": run},
            )
            .scalars()
            .all()
        )
    assert leaf != "predictions" and held == [leaf]
    cls = _count(engine, "SELECT min(class_id) FROM predictions WHERE model_run_id = :r", r=run)
    with pytest.raises(IntegrityError, match="data row -1"), engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {leaf} (model_run_id, data_row_id, class_id, x, y, w, h) VALUES (:r, -1, :c, 0, 0, 1, 1)"
            ),
            {"r": run, "c": cls},
        )
    assert _count(engine, "SELECT count(*) FROM predictions WHERE model_run_id = :r", r=run) == 4
