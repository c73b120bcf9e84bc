"""Deterministic generator of the Blindspot demo detection dataset (street-like cartoon scenes).

Five classes, chosen so a small detector makes realistic mistakes:

* ``person``  a head and a body; small people are a few pixels tall.
* ``bicycle`` two wheels and a frame; often half hidden behind a vehicle.
* ``car``     a low body with a cabin and two wheels.
* ``truck``   a car-like cab with a box behind it: the look-alike of ``car`` (short) and ``bus`` (long).
* ``bus``     a long box with a row of windows: the look-alike of a long ``truck``.

Colours are shared by all classes (colour never gives the class away), scenes have varied backgrounds
(sky/road, grass, noise, stripes), unlabeled distractor shapes (boxes, discs, poles) that look like
parts of objects, objects are drawn in depth order so later ones occlude earlier ones. Boxes are the
visible extent of each object; an object whose visible pixels fill less than 12.5 % of that box (chopped
into slivers by occluders) or that keeps fewer than 6 pixels is dropped from the ground truth.

Outputs (``write_dataset``)::

    OUT/images/{train,val}/000123.jpg
    OUT/labels/{train,val}/000123.txt     YOLO format: class cx cy w h (normalised)
    OUT/annotations/{train,val}.json       COCO detection ground truth (bbox = x, y, w, h in pixels)
    OUT/data.yaml                          ultralytics dataset file
    OUT/classes.txt                        one class name a line

Usage: ``python -m tools.demo_data --out artifacts/demo_data --n 2000 --seed 0``. Pure numpy + Pillow,
same seed => byte-identical images and labels.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES: tuple[str, ...] = ("person", "bicycle", "car", "truck", "bus")
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (320, 240), (256, 320), (320, 192), (288, 288))
MIN_VISIBLE = 0.25

Rgb = tuple[int, int, int]


@dataclass(frozen=True)
class DemoObject:
    """One ground-truth object: class index, visible box ``(x1, y1, x2, y2)`` in pixels, and ``visible``:
    the fraction of that box its visible pixels fill."""

    category: int
    box: tuple[float, float, float, float]
    visible: float


@dataclass(frozen=True)
class DemoImage:
    file_name: str
    width: int
    height: int
    objects: tuple[DemoObject, ...]


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> Rgb:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _shade(c: Rgb, f: float) -> Rgb:
    return (min(255, int(c[0] * f)), min(255, int(c[1] * f)), min(255, int(c[2] * f)))


# --- object painters: each draws into `draw` (RGB) and `mask` (L, value = instance id) -------------
# A painter takes (draw, mask, id, x, y, scale, rng) where (x, y) is the bottom-left corner on the ground.


def _paint_person(
    d: ImageDraw.ImageDraw,
    m: ImageDraw.ImageDraw,
    i: int,
    x: float,
    y: float,
    s: float,
    rng: np.random.Generator,
) -> None:
    h = s
    w = s * rng.uniform(0.28, 0.4)
    head = w * 0.75
    body, skin = _colour(rng), _colour(rng, 90, 235)
    legs = _colour(rng, 10, 120)
    for dr, fill in ((d, None), (m, i)):
        cb = body if fill is None else fill
        cs = skin if fill is None else fill
        cl = legs if fill is None else fill
        dr.rectangle((x + w * 0.1, y - h * 0.45, x + w * 0.9, y), fill=cl)  # legs
        dr.rectangle((x, y - h * 0.82, x + w, y - h * 0.42), fill=cb)  # torso
        cx = x + w / 2
        dr.ellipse((cx - head / 2, y - h, cx + head / 2, y - h + head), fill=cs)  # head


def _paint_bicycle(
    d: ImageDraw.ImageDraw,
    m: ImageDraw.ImageDraw,
    i: int,
    x: float,
    y: float,
    s: float,
    rng: np.random.Generator,
) -> None:
    w = s
    r = w * rng.uniform(0.2, 0.26)
    frame = _colour(rng)
    lw = max(1, int(w * 0.06))
    c1 = (x + r, y - r)
    c2 = (x + w - r, y - r)
    top = y - 2.1 * r
    for dr, fill in ((d, frame), (m, i)):
        for cx, cy in (c1, c2):
            dr.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=lw)
        dr.line((c1[0], c1[1], x + w * 0.45, top, c2[0], c2[1]), fill=fill, width=lw)
        dr.line((x + w * 0.45, top, x + w * 0.65, top), fill=fill, width=lw)
        dr.line((c2[0], c2[1], x + w * 0.7, top - r * 0.4), fill=fill, width=lw)


def _wheels(dr: ImageDraw.ImageDraw, fill: Rgb | int, xs: list[float], y: float, r: float) -> None:
    for cx in xs:
        dr.ellipse((cx - r, y - 2 * r, cx + r, y), fill=fill)


def _paint_car(
    d: ImageDraw.ImageDraw,
    m: ImageDraw.ImageDraw,
    i: int,
    x: float,
    y: float,
    s: float,
    rng: np.random.Generator,
) -> None:
    w = s
    h = w * rng.uniform(0.38, 0.48)
    body, glass = _colour(rng), _colour(rng, 120, 230)
    r = h * 0.22
    for dr, fb, fg, fw in ((d, body, glass, (20, 20, 20)), (m, i, i, i)):
        dr.rounded_rectangle((x, y - h * 0.62, x + w, y - r * 0.8), radius=max(1, int(h * 0.12)), fill=fb)
        dr.polygon(
            [
                (x + w * 0.22, y - h * 0.6),
                (x + w * 0.32, y - h),
                (x + w * 0.68, y - h),
                (x + w * 0.8, y - h * 0.6),
            ],
            fill=fb,
        )
        dr.polygon(
            [
                (x + w * 0.3, y - h * 0.62),
                (x + w * 0.36, y - h * 0.92),
                (x + w * 0.64, y - h * 0.92),
                (x + w * 0.72, y - h * 0.62),
            ],
            fill=fg,
        )
        _wheels(dr, fw, [x + w * 0.2, x + w * 0.8], y, r)


def _paint_truck(
    d: ImageDraw.ImageDraw,
    m: ImageDraw.ImageDraw,
    i: int,
    x: float,
    y: float,
    s: float,
    rng: np.random.Generator,
) -> None:
    w = s
    h = w * rng.uniform(0.45, 0.62)
    cab_w = w * rng.uniform(0.25, 0.32)
    box, cab, glass = _colour(rng), _colour(rng), _colour(rng, 120, 230)
    r = h * 0.14
    facing_left = bool(rng.integers(0, 2))
    cab_x = x if facing_left else x + w - cab_w
    box_x0, box_x1 = (x + cab_w + 1, x + w) if facing_left else (x, x + w - cab_w - 1)
    for dr, fb, fc, fg, fw in ((d, box, cab, glass, (20, 20, 20)), (m, i, i, i, i)):
        dr.rectangle((box_x0, y - h, box_x1, y - r * 1.2), fill=fb)
        dr.rectangle((cab_x, y - h * 0.68, cab_x + cab_w, y - r * 1.2), fill=fc)
        wx0 = cab_x + cab_w * (0.12 if facing_left else 0.45)
        dr.rectangle((wx0, y - h * 0.62, wx0 + cab_w * 0.43, y - h * 0.42), fill=fg)
        _wheels(dr, fw, [x + w * 0.15, x + w * 0.5, x + w * 0.85], y, r)


def _paint_bus(
    d: ImageDraw.ImageDraw,
    m: ImageDraw.ImageDraw,
    i: int,
    x: float,
    y: float,
    s: float,
    rng: np.random.Generator,
) -> None:
    w = s
    h = w * rng.uniform(0.3, 0.42)
    body, glass = _colour(rng), _colour(rng, 120, 230)
    r = h * 0.14
    n_win = int(rng.integers(4, 8))
    for dr, fb, fg, fw in ((d, body, glass, (20, 20, 20)), (m, i, i, i)):
        dr.rounded_rectangle((x, y - h, x + w, y - r * 1.2), radius=max(1, int(h * 0.1)), fill=fb)
        pitch = w * 0.9 / n_win
        for k in range(n_win):
            wx = x + w * 0.05 + k * pitch
            dr.rectangle((wx + pitch * 0.12, y - h * 0.85, wx + pitch * 0.88, y - h * 0.5), fill=fg)
        _wheels(dr, fw, [x + w * 0.18, x + w * 0.82], y, r)


Painter = Callable[
    [ImageDraw.ImageDraw, ImageDraw.ImageDraw, int, float, float, float, np.random.Generator], None
]
PAINTERS: tuple[Painter, ...] = (_paint_person, _paint_bicycle, _paint_car, _paint_truck, _paint_bus)
# (min, max) object scale in pixels (person: height, others: width) relative to the image width.
SCALE: tuple[tuple[float, float], ...] = ((0.04, 0.35), (0.05, 0.3), (0.07, 0.4), (0.09, 0.5), (0.14, 0.6))
# Long-tailed class frequencies: bicycles and buses are rarer, like in real street data.
CLASS_P = np.array([0.34, 0.12, 0.28, 0.16, 0.10])


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, float]:
    """A scene background and the y of its horizon (objects stand below it)."""
    kind = int(rng.integers(0, 4))
    horizon = float(rng.uniform(0.2, 0.55)) * h
    arr = np.empty((h, w, 3), dtype=np.float32)
    top, bottom = np.array(_colour(rng, 60, 250), np.float32), np.array(_colour(rng, 30, 200), np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    t = np.clip(ys / max(horizon, 1.0), 0, 1)
    arr[:] = (top * (1 - t) + bottom * t)[:, None, :]
    ground = np.array(_colour(rng, 30, 170), np.float32)
    arr[int(horizon) :] = ground
    if kind == 1:  # stripes (lanes / crossings)
        period = int(rng.integers(8, 40))
        band = (np.arange(w) // period) % 2 == 0
        arr[int(horizon) :, band] *= rng.uniform(0.7, 1.3)
    elif kind == 2:  # textured grass/gravel
        arr[int(horizon) :] += rng.normal(0, 25, size=(h - int(horizon), w, 1)).astype(np.float32)
    elif kind == 3:  # blotches
        for _ in range(int(rng.integers(3, 9))):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            rad = rng.uniform(10, 80)
            yy, xx = np.ogrid[:h, :w]
            arr[(yy - cy) ** 2 + (xx - cx) ** 2 < rad**2] *= rng.uniform(0.6, 1.4)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img, horizon


def _distractors(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, horizon: float) -> None:
    """Unlabeled clutter: boxes (look like bus/truck bodies), discs (wheels/heads), poles (people)."""
    for _ in range(int(rng.integers(0, 7))):
        kind = int(rng.integers(0, 4))
        x, y = float(rng.uniform(0, w)), float(rng.uniform(horizon * 0.5, h))
        s = float(rng.uniform(0.03, 0.25)) * w
        c = _colour(rng)
        if kind == 0:
            d.rectangle((x, y - s * rng.uniform(0.3, 1.0), x + s, y), fill=c)
        elif kind == 1:
            d.ellipse((x, y - s * 0.5, x + s * 0.5, y), fill=c)
        elif kind == 2:
            d.rectangle((x, y - s * 1.5, x + max(2, s * 0.08), y), fill=c)
        else:
            pts = [(x + float(rng.uniform(-s, s)), y + float(rng.uniform(-s, s))) for _ in range(5)]
            d.polygon(pts, fill=c)


def render_image(rng: np.random.Generator, file_name: str) -> tuple[Image.Image, DemoImage]:
    """Draw one scene; returns the RGB image and its ground truth (visible boxes)."""
    w, h = IMAGE_SIZES[int(rng.integers(0, len(IMAGE_SIZES)))]
    img, horizon = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    _distractors(draw, rng, w, h, horizon)
    mask_img = Image.new("I", (w, h), 0)
    mask = ImageDraw.Draw(mask_img)
    n = int(rng.integers(1, 11))
    placed: list[tuple[int, int]] = []  # (instance id, category)
    # Depth order: objects farther away (higher on screen) are drawn first and are smaller.
    ground_ys = np.sort(rng.uniform(horizon + 4, h + 0.15 * h, size=n))
    for k, gy in enumerate(ground_ys):
        cat = int(rng.choice(len(CLASSES), p=CLASS_P))
        lo, hi = SCALE[cat]
        depth = (gy - horizon) / max(h - horizon, 1.0)  # 0 far .. ~1 near
        scale = float(rng.uniform(lo, hi)) * w * (0.35 + 0.75 * depth)
        x = float(rng.uniform(-0.15 * scale, w - 0.85 * scale))
        inst = k + 1
        PAINTERS[cat](draw, mask, inst, x, float(gy), max(scale, 4.0), rng)
        placed.append((inst, cat))
    ids = np.asarray(mask_img, dtype=np.int32)
    objects: list[DemoObject] = []
    for inst, cat in placed:
        vis = ids == inst
        n_vis = int(vis.sum())
        if n_vis < 6:
            continue
        ys, xs = np.nonzero(vis)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw < 3 or bh < 3:
            continue
        area_frac = n_vis / (bw * bh)
        if area_frac < MIN_VISIBLE * 0.5:  # an object chopped into slivers by occluders
            continue
        objects.append(DemoObject(category=cat, box=box, visible=round(area_frac, 3)))
    # Sensor effects: blur, noise, brightness; applied after masks so boxes stay exact.
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.4))))
    arr = np.asarray(img, dtype=np.float32) * float(rng.uniform(0.6, 1.25))
    arr += rng.normal(0, float(rng.uniform(2, 14)), size=arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img, DemoImage(file_name=file_name, width=w, height=h, objects=tuple(objects))


def generate(n: int, seed: int = 0) -> list[tuple[Image.Image, DemoImage]]:
    """``n`` scenes in memory (for tests and the demo command); deterministic in ``seed``."""
    out = []
    for idx in range(n):
        rng = np.random.default_rng([seed, idx])
        out.append(render_image(rng, f"{idx:06d}.jpg"))
    return out


def coco_json(images: list[DemoImage]) -> dict[str, object]:
    """COCO detection ground truth; category ids are 1-based in CLASSES order."""
    coco_images, anns = [], []
    ann_id = 1
    for img_id, im in enumerate(images, start=1):
        coco_images.append({"id": img_id, "file_name": im.file_name, "width": im.width, "height": im.height})
        for o in im.objects:
            x1, y1, x2, y2 = o.box
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": o.category + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    cats = [{"id": i + 1, "name": name, "supercategory": "street"} for i, name in enumerate(CLASSES)]
    return {"images": coco_images, "annotations": anns, "categories": cats}


def yolo_txt(im: DemoImage) -> str:
    lines = []
    for o in im.objects:
        x1, y1, x2, y2 = o.box
        cx, cy = (x1 + x2) / 2 / im.width, (y1 + y2) / 2 / im.height
        lines.append(f"{o.category} {cx:.6f} {cy:.6f} {(x2 - x1) / im.width:.6f} {(y2 - y1) / im.height:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_dataset(out: Path, n: int, seed: int = 0, val_fraction: float = 0.15) -> Path:
    """Write ``n`` scenes (train + val split) under ``out``; returns the path of ``data.yaml``."""
    out = Path(out)
    n_val = max(1, round(n * val_fraction))
    splits = {"train": range(0, n - n_val), "val": range(n - n_val, n)}
    for split, idxs in splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        metas = []
        for idx in idxs:
            img, meta = render_image(np.random.default_rng([seed, idx]), f"{idx:06d}.jpg")
            img.save(out / "images" / split / meta.file_name, quality=90)
            (out / "labels" / split / f"{idx:06d}.txt").write_text(yolo_txt(meta))
            metas.append(meta)
        (out / "annotations" / f"{split}.json").write_text(json.dumps(coco_json(metas)))
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    data_yaml = out / "data.yaml"
    data_yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data_yaml


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("artifacts/demo_data"))
    p.add_argument("--n", type=int, default=2000, help="number of images (train + val)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.15)
    a = p.parse_args(argv)
    path = write_dataset(a.out, a.n, a.seed, a.val_fraction)
    print(path)


if __name__ == "__main__":
    main()
