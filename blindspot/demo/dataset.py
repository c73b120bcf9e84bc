"""The demo data set on disk: generated once by ``tools/demo_data.py``, split into labeled and unlabeled.

``tools/`` is not part of the wheel, so the generator runs as ``python -m tools.demo_data`` from the
repository root (``make demo`` runs from a checkout).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from shared.settings import REPO_ROOT

err = Console(stderr=True, soft_wrap=True)


class DemoError(Exception):
    """A step that cannot go on; the message says which and what to look at."""


def ensure_images(folder: Path, n: int, seed: int) -> Path:
    """Generate the scenes once (``tools.demo_data``, deterministic in n and seed); the output folder."""
    out = folder / f"n{n}-seed{seed}"
    if (out / "data.yaml").is_file():  # written last: the set is complete
        return out
    if not (REPO_ROOT / "tools" / "demo_data.py").is_file():
        raise DemoError(f"the demo data generator {REPO_ROOT / 'tools' / 'demo_data.py'} is missing")
    cmd = [sys.executable, "-m", "tools.demo_data", "--out", str(out), "--n", str(n), "--seed", str(seed)]
    with err.status(f"generating {n} demo images (seed {seed})"):
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")
    return out


def split_labeled(images: list[dict[str, Any]], unlabeled_fraction: float) -> tuple[list[str], list[str]]:
    """Keys (``train/000012.jpg``) in id order, spread evenly: every 1/fraction-th one stays unlabeled."""
    keys = [im["key"] for im in sorted(images, key=lambda im: im["key"].rsplit("/", 1)[-1])]
    labeled: list[str] = []
    unlabeled: list[str] = []
    for i, key in enumerate(keys):
        hold = int((i + 1) * unlabeled_fraction) > int(i * unlabeled_fraction)
        (unlabeled if hold else labeled).append(key)
    return labeled, unlabeled


def load_coco(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Images (with ``key`` = path under images/), annotations and categories of both generated splits."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    cats: list[dict[str, Any]] = []
    for split in ("train", "val"):
        coco = json.loads((data / "annotations" / f"{split}.json").read_text())
        cats = coco["categories"]
        base = len(images)
        for im in coco["images"]:
            images.append({**im, "id": base + im["id"], "key": f"{split}/{im['file_name']}"})
        anns += [{**a, "image_id": base + a["image_id"]} for a in coco["annotations"]]
    return images, anns, cats


def ground_truth(images: list[dict[str, Any]], anns: list[dict[str, Any]], cats: list[dict[str, Any]],
                 labeled: set[str]) -> bytes:  # fmt: skip
    """COCO GT of the labeled images only; ``file_name`` is the global key (an exact match)."""
    keep = [im for im in images if im["key"] in labeled]
    ids = {im["id"] for im in keep}
    coco = {
        "images": [
            {"id": im["id"], "file_name": im["key"], "width": im["width"], "height": im["height"]}
            for im in keep
        ],
        "annotations": [a for a in anns if a["image_id"] in ids],
        "categories": cats,
    }
    return json.dumps(coco).encode()
