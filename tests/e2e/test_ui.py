"""The web UI end to end in headless Chromium against the real gateway over seeded data.

The seed (``seed.py``) knows every box and outcome, so each step checks what the UI shows against
numbers derived independently of the gateway: rows sorted by ascending IoU, a class filter's rows, a
histogram bucket's rows, a lasso's points, similar unlabeled rows, and the batch written to the database.
Screenshots of each view land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from shared.db.models import Batch, BatchRow, LabelingProject, ProjectionPoint, Slice
from tests.e2e.conftest import DemoStack
from tests.e2e.seed import row_metric_values

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(180)]

VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture
def page(chromium: Any, demo_stack: DemoStack) -> Iterator[Any]:
    """A fresh tab signed in with the seeded key (the login screen has its own test)."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.add_init_script(f"sessionStorage.setItem('blindspot.apiKey', {demo_stack.data.api_key!r});")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def _gallery_url(stack: DemoStack, query: str = "sort=mean_iou:asc:") -> str:
    return f"{stack.base_url}/#/runs/{stack.data.run_id}/gallery?{query}"


def _load_all(page: Any) -> int:
    """Scrolls the gallery until its last page is in; returns the number of tiles."""
    count = page.locator("[data-testid=gallery-count]")
    for _ in range(50):
        if count.get_attribute("data-done") == "true":
            break
        page.locator(".grid-scroll").evaluate("el => el.scrollTo(0, el.scrollHeight)")
        page.wait_for_timeout(150)
    assert count.get_attribute("data-done") == "true"
    return page.locator(".tile").count()


def _tile_ids(page: Any) -> list[int]:
    return [int(x) for x in page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.rowId)")]


def test_login_screen_accepts_a_key_and_refuses_a_wrong_one(chromium: Any, demo_stack: DemoStack) -> None:
    context = chromium.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.goto(demo_stack.base_url + "/")
    pg.fill("input[name=api-key]", "bsk_000000000000_wrong")
    pg.click("button[type=submit]")
    pg.wait_for_function("() => document.querySelector('.login-error').textContent !== ''")
    assert "not accepted" in pg.locator(".login-error").inner_text()
    pg.fill("input[name=api-key]", demo_stack.data.api_key)
    pg.click("button[type=submit]")
    pg.wait_for_selector(".tile")
    assert pg.evaluate("sessionStorage.getItem('blindspot.apiKey')") == demo_stack.data.api_key
    context.close()


def test_gallery_sorted_by_ascending_iou_then_class_filter(
    page: Any, demo_stack: DemoStack, screenshots_dir: Path
) -> None:
    data = demo_stack.data
    page.goto(_gallery_url(demo_stack))
    page.wait_for_selector(".tile .obj")
    labeled = [r for r in data.rows if r.labeled]
    # The first page holds the lowest mean IoUs, ascending; rows without a TP (no IoU) come last.
    ious = {r.id: row_metric_values(r.objects)["mean_iou"] for r in labeled}
    expected = sorted((v, i) for i, v in ious.items() if v is not None)
    shown = _tile_ids(page)
    assert shown[:10] == [i for _, i in expected[:10]]
    # Infinite scroll over the keyset pages (60 rows each): every row once, IoU ascending, then no-IoU rows.
    assert _load_all(page) == len(labeled)
    shown = _tile_ids(page)
    assert shown[: len(expected)] == [i for _, i in expected]
    assert set(shown[len(expected) :]) == {i for i, v in ious.items() if v is None}
    page.locator(".grid-scroll").evaluate("el => el.scrollTo(0, 0)")
    # Boxes are drawn in the three outcome colours, over the thumbnails.
    statuses = set(page.locator(".tile .obj").evaluate_all("gs => gs.map(g => g.dataset.status)"))
    assert {"TP", "FP", "FN"} <= statuses
    assert page.locator(".legend .lg-FN").first.is_visible()
    assert page.locator(".tile img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(screenshots_dir / "gallery.png"))

    # Class filter from the panel: rows with a ground-truth "dog".
    page.select_option("select[name=class]", "dog")
    page.select_option("select[name=class-where]", "class_in_gt")
    page.click("[data-testid=apply-class]")
    page.wait_for_function("() => location.hash.includes('class_in_gt')")
    page.wait_for_selector(".tile")
    n = _load_all(page)
    with_dog = {r.id for r in labeled if any(o.kind == "gt" and o.cls == "dog" for o in r.objects)}
    assert n == len(with_dog)
    assert set(_tile_ids(page)) == with_dog
    assert page.locator("[data-testid=gallery-count]").inner_text() == f"{len(with_dog)} rows"
    assert "class in gt" in page.locator("[data-testid=active-filters]").inner_text()
    page.screenshot(path=str(screenshots_dir / "gallery_class_filter.png"))

    # Detail view: the full-resolution image with every object's match, IoU and error type.
    first = _tile_ids(page)[0]
    row = next(r for r in labeled if r.id == first)
    page.locator(".tile").first.click()
    page.wait_for_selector(".objects-table tbody tr")
    assert page.locator(".objects-table tbody tr").count() == len(row.objects)
    errors = sorted(o.error_type for o in row.objects if o.error_type)
    labels = {"cls": "classification", "loc": "localisation", "bkg": "background", "miss": "missed"}
    table = page.locator(".objects-table").inner_text()
    for e in errors:
        assert labels[e] in table
    page.wait_for_function("() => document.querySelector('.detail-image img').naturalWidth === 480")
    page.screenshot(path=str(screenshots_dir / "detail.png"))


def test_histogram_bucket_opens_gallery_with_matching_count(
    page: Any, demo_stack: DemoStack, screenshots_dir: Path
) -> None:
    data = demo_stack.data
    page.goto(f"{demo_stack.base_url}/#/runs/{data.run_id}/metrics")
    page.wait_for_selector(".hist[data-metric=recall] .bar")
    page.wait_for_selector("[data-testid=class-table] tbody tr")
    page.wait_for_selector("[data-testid=confusion] td.cm")
    page.screenshot(path=str(screenshots_dir / "metrics.png"), full_page=True)
    # Recall bucket [0.5, 0.6): rows whose recall falls in it, computed from the seed.
    bars = page.locator(".hist[data-metric=recall] .bar:not(.empty):not(.nullbar)")
    assert bars.count() >= 2
    bar = bars.nth(0)
    lo, hi, count = (float(bar.get_attribute(a) or "nan") for a in ("data-lo", "data-hi", "data-count"))
    recalls = [row_metric_values(r.objects)["recall"] for r in data.rows if r.labeled]
    last = math.isclose(hi, 1.0)
    expected = sum(1 for v in recalls if v is not None and lo <= v and (v <= hi if last else v < hi))
    assert int(count) == expected
    bar.click()
    page.wait_for_function("() => location.hash.includes('/gallery')")
    page.wait_for_selector(".tile")
    n = _load_all(page)
    assert n == expected
    assert page.locator("[data-testid=gallery-count]").inner_text() == f"{expected} rows"
    page.screenshot(path=str(screenshots_dir / "gallery_from_bucket.png"))

    # A confusion-matrix cell opens its rows the same way: GT dog predicted as dog (TP pairs).
    page.goto(f"{demo_stack.base_url}/#/runs/{data.run_id}/metrics")
    cell = page.locator("[data-testid=confusion] tbody tr", has_text="dog").first.locator("td.cm.diag")
    cell.wait_for()
    rows_with_tp_dog = {
        r.id
        for r in data.rows
        if any(o.kind == "pred" and o.status == "TP" and o.cls == "dog" for o in r.objects)
    }
    assert cell.get_attribute("data-rows") == str(len(rows_with_tp_dog))
    cell.click()
    page.wait_for_function("() => location.hash.includes('/gallery')")
    page.wait_for_selector(".tile")
    assert _load_all(page) == len(rows_with_tp_dog)
    assert set(_tile_ids(page)) == rows_with_tp_dog


def _lasso_expected(
    page: Any, engine: Engine, stack: DemoStack, poly_frac: list[tuple[float, float]]
) -> set[int]:
    """The ids inside a lasso, computed with the projector's fit-to-view transform from the stored points."""
    with engine.connect() as conn:
        pts = conn.execute(
            select(ProjectionPoint.data_row_id, ProjectionPoint.x, ProjectionPoint.y).where(
                ProjectionPoint.projection_id == stack.data.projection_id
            )
        ).all()
    box = page.locator(".proj-overlay").bounding_box()
    w, h = math.floor(box["width"]), math.floor(box["height"])
    x0, x1 = min(p.x for p in pts), max(p.x for p in pts)
    y0, y1 = min(p.y for p in pts), max(p.y for p in pts)
    scale = 0.9 * min(w / (x1 - x0), h / (y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    poly = [((fx * w - w / 2) / scale + cx, (h / 2 - fy * h) / scale + cy) for fx, fy in poly_frac]

    def inside(x: float, y: float) -> bool:
        hit = False
        j = len(poly) - 1
        for i in range(len(poly)):
            (xi, yi), (xj, yj) = poly[i], poly[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                hit = not hit
            j = i
        return hit

    return {int(p.data_row_id) for p in pts if inside(p.x, p.y)}


def test_projector_lasso_into_gallery(
    page: Any, demo_stack: DemoStack, engine: Engine, screenshots_dir: Path
) -> None:
    data = demo_stack.data
    # The map is pinned by id in the URL (the search service lists no projections yet).
    page.goto(
        f"{demo_stack.base_url}/#/runs/{data.run_id}/projector?color=mean_iou&projection={data.projection_id}"
    )
    page.wait_for_selector(".proj-stage[data-ready=true]")
    assert page.locator("[data-testid=projector-info]").get_attribute("data-points") == str(len(data.rows))
    page.wait_for_selector(".proj-stage[data-colored=true]")  # coloured by mean IoU (read from the gallery)
    page.screenshot(path=str(screenshots_dir / "projector_map.png"))
    # Zoom in and out around the centre, then reset: the fit transform is what the lasso math assumes.
    canvas = page.locator(".proj-overlay")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.mouse.wheel(0, 400)
    page.get_by_role("button", name="Reset view").click()
    # A lasso around the left half of the map (a polygon in fractions of the canvas).
    poly = [(0.04, 0.06), (0.47, 0.06), (0.47, 0.94), (0.04, 0.94)]
    expected = _lasso_expected(page, engine, demo_stack, poly)
    assert 0 < len(expected) < len(data.rows)
    page.click("[data-testid=lasso-mode]")
    page.mouse.move(box["x"] + poly[0][0] * box["width"], box["y"] + poly[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in [*poly[1:], poly[0]]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=8)
    page.mouse.up()
    assert page.locator("[data-testid=lasso-count]").inner_text() == f"{len(expected)} selected"
    page.screenshot(path=str(screenshots_dir / "projector.png"))
    page.click("[data-testid=lasso-open]")
    page.wait_for_selector(".tile")
    n = _load_all(page)
    in_run = expected & set(data.labeled_ids)
    assert n == len(in_run)
    assert set(_tile_ids(page)) == in_run
    page.screenshot(path=str(screenshots_dir / "gallery_from_lasso.png"))


def test_find_similar_unlabeled_rows_and_create_batch(
    page: Any, demo_stack: DemoStack, engine: Engine, screenshots_dir: Path
) -> None:
    data = demo_stack.data
    page.goto(_gallery_url(demo_stack, "sort=fn:desc:"))
    page.wait_for_selector(".tile")
    for i in range(3):
        page.locator(".tile .tile-check").nth(i).click()
    assert page.locator("[data-testid=selection-count]").inner_text() == "3"
    page.check("input[name=unlabeled-only]")
    page.click("[data-testid=find-similar]")
    page.wait_for_selector("[data-testid=similar-grid] .tile")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=similar-count]').dataset.count !== undefined"
    )
    found = int(page.locator("[data-testid=similar-count]").get_attribute("data-count") or "0")
    assert found > 0
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=similar-grid] .tile').length === {found}"
    )
    ids = set(_tile_ids(page))
    assert ids <= set(data.unlabeled_ids), "unlabeled only: every similar row has no annotation"
    # Ranked by similarity, best first (tiles keep the rank order whatever order they loaded in).
    badges = page.locator("[data-testid=similar-grid] .tile").evaluate_all(
        "ts => ts.sort((a, b) => a.style.order - b.style.order).map(t => t.querySelector('.tile-badge').textContent)"
    )
    scores = [float(b.split()[-1]) for b in badges]
    assert scores == sorted(scores, reverse=True)
    page.screenshot(path=str(screenshots_dir / "similar.png"))

    # Save the search as a slice (anchors + the lowest score shown, unlabeled only).
    page.get_by_role("button", name="Save as slice").click()
    page.fill("input[name=slice-name]", "e2e like the worst rows")
    page.click("[data-testid=slice-submit]")
    page.locator(".modal .ok-banner").wait_for()
    page.get_by_role("button", name="Cancel").click()
    with engine.connect() as conn:
        saved = conn.execute(select(Slice).where(Slice.name == "e2e like the worst rows")).one()
    assert saved.filter == {"annotation": "none"}
    assert saved.similarity is not None and len(saved.similarity["data_row_ids"]) == 3

    page.click("[data-testid=select-all-similar]")
    assert page.locator("[data-testid=selection-count]").inner_text() == str(found)
    page.click("[data-testid=create-batch]")
    page.fill("input[name=new-project]", "e2e-relabel")
    page.fill("input[name=batch-name]", "e2e similar unlabeled")
    page.select_option("select[name=priority]", "2")
    page.click("[data-testid=batch-submit]")
    result = page.locator("[data-testid=batch-result] .ok-banner")
    result.wait_for()
    assert re.search(rf"{found} added", result.inner_text())
    page.screenshot(path=str(screenshots_dir / "batch.png"))
    with engine.connect() as conn:
        batch = conn.execute(select(Batch).where(Batch.name == "e2e similar unlabeled")).one()
        assert batch.priority == 2
        project = conn.execute(select(LabelingProject).where(LabelingProject.id == batch.project_id)).one()
        assert project.name == "e2e-relabel"
        rows = set(conn.execute(select(BatchRow.data_row_id).where(BatchRow.batch_id == batch.id)).scalars())
    assert rows == ids


def test_iou_threshold_slider_recounts_true_positives(page: Any, demo_stack: DemoStack) -> None:
    data = demo_stack.data
    page.goto(_gallery_url(demo_stack, "sort=data_row_id:asc:"))
    page.wait_for_selector(".tile")
    # Move the IoU slider to 0.75: the gallery reloads with the matches at that threshold.
    page.locator("input[name=iou]").evaluate(
        "el => { el.value = '0.75'; el.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    page.wait_for_function("() => location.hash.includes('iou=0.75')")
    page.wait_for_selector(".tile")
    assert page.locator("input[name=iou]").input_value() == "0.75"
    tiles = page.locator(".tile")
    by_id = {r.id: r for r in data.rows}
    for i in range(min(12, tiles.count())):
        row = by_id[int(tiles.nth(i).get_attribute("data-row-id") or "0")]
        tp75 = sum(1 for o in row.objects if o.kind == "pred" and o.status == "TP" and (o.iou or 0) >= 0.75)
        assert tiles.nth(i).locator(".n-tp").inner_text() == str(tp75)
