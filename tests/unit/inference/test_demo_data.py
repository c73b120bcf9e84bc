"""The demo dataset generator: deterministic, COCO + YOLO labels that agree, the hard cases present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tools.demo_data import CLASSES, generate, write_dataset


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", n=12, seed=3)
    b = write_dataset(tmp_path / "b", n=12, seed=3)
    c = write_dataset(tmp_path / "c", n=12, seed=4)
    for rel in ("images/train/000000.jpg", "labels/val/000011.txt", "annotations/train.json"):
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes()
    assert (a.parent / "images/train/000000.jpg").read_bytes() != (
        c.parent / "images/train/000000.jpg"
    ).read_bytes()
    assert "names:" in a.read_text() and (a.parent / "classes.txt").read_text().split() == list(CLASSES)


def test_coco_and_yolo_labels_agree(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    root = write_dataset(tmp_path, n=20, seed=1).parent
    coco = COCO(str(root / "annotations" / "train.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    for img in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        lines = (root / "labels" / "train" / img["file_name"].replace(".jpg", ".txt")).read_text().split("\n")
        lines = [ln for ln in lines if ln]
        assert len(lines) == len(anns)
        for ln, ann in zip(lines, anns, strict=True):
            k, cx, cy, w, h = (float(v) for v in ln.split())
            assert int(k) + 1 == ann["category_id"]
            x, y, bw, bh = ann["bbox"]
            assert abs(cx * img["width"] - (x + bw / 2)) < 0.01
            assert abs(cy * img["height"] - (y + bh / 2)) < 0.01
            assert abs(w * img["width"] - bw) < 0.01
            assert abs(h * img["height"] - bh) < 0.01
            assert x >= 0 and x + bw <= img["width"] and y >= 0 and y + bh <= img["height"]


def test_scenes_have_every_class_small_objects_and_occlusion() -> None:
    scenes = generate(60, seed=0)
    objs = [o for _, meta in scenes for o in meta.objects]
    assert {o.category for o in objs} == set(range(len(CLASSES)))
    areas = np.array([(o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) for o in objs])
    assert (areas < 32 * 32).mean() > 0.3  # COCO "small" objects are common
    assert any(o.visible < 0.5 for o in objs)  # partly hidden objects
    sizes = {(meta.width, meta.height) for _, meta in scenes}
    assert len(sizes) >= 3
    img, meta = scenes[0]
    assert img.size == (meta.width, meta.height)
    data = json.dumps([o.box for o in meta.objects])
    assert data  # boxes are plain floats (JSON-serialisable)
