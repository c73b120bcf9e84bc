"""``blindspot eval coco`` end to end on files (in-process typer runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
from typer.testing import CliRunner

from blindspot.cli import app
from shared.metrics.coco import STAT_KEYS
from tests.unit.metrics_coco.cocogen import make_dataset, pycoco_eval, pycoco_per_class

runner = CliRunner()


def _write(tmp_path: Path, gt: dict[str, Any], dets: Any) -> tuple[Path, Path, Path]:
    g, d = tmp_path / "gt.json", tmp_path / "dets.json"
    g.write_bytes(orjson.dumps(gt))
    d.write_bytes(orjson.dumps(dets))
    return g, d, tmp_path / "out" / "report.json"


def test_report_numbers_equal_pycocotools(tmp_path: Path) -> None:
    gt, dets = make_dataset(21, n_images=40)
    g, d, out = _write(tmp_path, gt, dets)
    res = runner.invoke(app, ["eval", "coco", "--gt", str(g), "--dets", str(d), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "mAP" in res.stdout
    report = orjson.loads(out.read_bytes())
    ev = pycoco_eval(gt, dets)
    assert [report[k] for k in STAT_KEYS] == ev.stats.tolist()
    assert "per_image" not in report
    want = pycoco_per_class(ev)
    assert set(report["per_class"]) == {str(c["id"]) for c in gt["categories"]}
    for cid, (ap, ap50, ap75) in want.items():
        entry = report["per_class"][str(cid)]
        assert np.allclose([entry["AP"], entry["AP50"], entry["AP75"]], [ap, ap50, ap75], atol=1e-12, rtol=0)
    no_gt = str(gt["categories"][-1]["id"])  # the generator never gives the last class GT
    assert report["per_class"][no_gt] == {"AP": -1.0, "AP50": -1.0, "AP75": -1.0, "num_gt": 0}


def test_per_image_counts_and_matches(tmp_path: Path) -> None:
    gt, dets = make_dataset(22, n_images=30)
    g, d, out = _write(tmp_path, gt, {"annotations": dets})  # {"annotations": [...]} also accepted
    res = runner.invoke(
        app, ["eval", "coco", "--gt", str(g), "--dets", str(d), "--out", str(out), "--per-image", "-q"]
    )
    assert res.exit_code == 0, res.output
    per_image = orjson.loads(out.read_bytes())["per_image"]
    assert set(per_image) == {str(im["id"]) for im in gt["images"]}
    ev = pycoco_eval(gt, dets)
    n_area, n_img = len(ev.params.areaRng), len(ev.params.imgIds)
    anns = {a["id"]: a for a in gt["annotations"]}
    for k, cat in enumerate(ev.params.catIds):
        for i, img in enumerate(ev.params.imgIds):
            e = ev.evalImgs[k * n_area * n_img + i]
            entry = per_image[str(img)]["per_class"].get(str(cat))
            if e is None:
                assert entry is None
                continue
            matched, ig = e["dtMatches"][0] > 0, e["dtIgnore"][0].astype(bool)
            fn = int(((e["gtMatches"][0] == 0) & (e["gtIgnore"] == 0)).sum())
            assert entry == {"tp": int((matched & ~ig).sum()), "fp": int((~matched & ~ig).sum()), "fn": fn}
    for img, entry in per_image.items():
        assert entry["tp"] == len(entry["matches"])
        assert entry["tp"] == sum(c["tp"] for c in entry["per_class"].values())
        for match in entry["matches"]:
            det, ann = dets[match["det"]], anns[match["gt"]]
            assert det["image_id"] == ann["image_id"] == int(img)
            assert det["category_id"] == ann["category_id"] == match["category_id"]
            assert match["iou"] >= 0.5 and not ann["iscrowd"]


def test_bad_inputs_exit_with_a_clear_message(tmp_path: Path) -> None:
    gt, dets = make_dataset(23, n_images=5)
    g, d, out = _write(
        tmp_path, gt, [*dets, {"image_id": 424242, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]
    )
    res = runner.invoke(app, ["eval", "coco", "--gt", str(g), "--dets", str(d), "--out", str(out)])
    assert res.exit_code == 2
    assert "images not in the ground truth" in res.output and "424242" in res.output
    assert not out.exists()
    (tmp_path / "broken.json").write_text("{not json")
    res = runner.invoke(
        app, ["eval", "coco", "--gt", str(tmp_path / "broken.json"), "--dets", str(d), "--out", str(out)]
    )
    assert res.exit_code == 2 and "not valid JSON" in res.output
    res = runner.invoke(
        app, ["eval", "coco", "--gt", str(tmp_path / "missing.json"), "--dets", str(d), "--out", str(out)]
    )
    assert res.exit_code == 2 and "cannot read" in res.output


def _per_image_from_matches(res: Any, gt: dict[str, Any], dets: list[dict[str, Any]]) -> dict[str, Any]:
    """``per_image`` rebuilt from the public per-object API (``image_counts``, ``matches`` in input order)."""
    counts, m = res.image_counts(0), res.matches
    out: dict[str, Any] = {
        str(i): {"tp": 0, "fp": 0, "fn": 0, "ignored": 0, "per_class": {}, "matches": []}
        for i in res.image_ids.tolist()
    }
    rows = zip(
        *(
            a.tolist()
            for a in (counts.image_id, counts.category_id, counts.tp, counts.fp, counts.fn, counts.ignored)
        ),
        strict=True,
    )
    for img, cat, tp, fp, fn, ig in sorted(rows):
        e = out[str(img)]
        e["tp"], e["fp"], e["fn"], e["ignored"] = e["tp"] + tp, e["fp"] + fp, e["fn"] + fn, e["ignored"] + ig
        e["per_class"][str(cat)] = {"tp": tp, "fp": fp, "fn": fn}
    gt_ids = [a["id"] for a in gt["annotations"]]
    for d in np.flatnonzero(m.det_tp[0]).tolist():  # ascending detection index
        out[str(dets[d]["image_id"])]["matches"].append(
            {
                "det": d,
                "gt": gt_ids[m.det_matched_gt[0, d]],
                "category_id": dets[d]["category_id"],
                "iou": float(m.det_match_iou[0, d]),
            }
        )
    return out


def test_per_image_equals_the_per_object_results(tmp_path: Path) -> None:
    """The report reads the matching's sorted arrays; the per-object API scatters them back to input order:
    both must give the same entries, matches (order within an image: detection index) and IoUs, bit for bit."""
    from shared.metrics.coco import evaluate_coco
    from shared.metrics.coco_report import coco_report

    for seed in (31, 32, 33):
        gt, dets = make_dataset(seed, n_images=25, many_dets_images=3)
        res = evaluate_coco(gt, dets)
        got = coco_report(res, per_image=True)["per_image"]
        want = _per_image_from_matches(res, gt, dets)
        assert got == want
        assert sum(len(e["matches"]) for e in got.values()) > 20
