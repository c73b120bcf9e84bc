"""Record ultralytics' own post-processing of a YOLOv8 ONNX's raw outputs, for the parity tests.

Runs in the tools venv (torch + ultralytics)::

    .venv-tools/bin/python -m tools.make_parity_fixture \
        --onnx deploy/triton/models/yolov8_demo/1/model.onnx --out tests/unit/inference/data/parity.npz

Images: ``tools.demo_data.generate(n, seed)`` (a seed the detector never trained on), letterboxed by
ultralytics' ``LetterBox``, run through ONNX Runtime. Stored: the raw outputs ``[n, 4 + nc, N]``, the
original shapes, and for each NMS configuration the detections of ``non_max_suppression`` scaled back by
``scale_boxes``; plus ``YOLO(onnx).predict`` on the same images (pre-processing included).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
from pathlib import Path

import numpy as np

CONFIGS = (  # (conf, iou, agnostic)
    (0.25, 0.7, False),
    (0.001, 0.6, False),
    (0.05, 0.5, True),
)
PREDICT_CONF, PREDICT_IOU = 0.25, 0.7


def build(onnx: Path, out: Path, n: int, seed: int) -> Path:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    from tools.demo_data import generate

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    imgsz = int(ast.literal_eval(meta["imgsz"])[0])  # ultralytics writes "[256, 256]"
    images = [np.asarray(im.convert("RGB")) for im, _ in generate(n, seed)]
    lb = LetterBox((imgsz, imgsz), auto=False, stride=32)
    canvases = [lb(image=im) for im in images]  # RGB in, RGB out
    batch = np.stack([c.transpose(2, 0, 1) for c in canvases]).astype(np.float32) / 255.0
    raw = session.run(None, {session.get_inputs()[0].name: batch})[0]
    arrays: dict[str, np.ndarray] = {
        "raw": raw.astype(np.float32),
        "orig_shapes": np.array([im.shape[:2] for im in images], dtype=np.int64),
        "imgsz": np.array(imgsz),
        "n": np.array(n),
        "seed": np.array(seed),
        "onnx_sha256": np.array(hashlib.sha256(onnx.read_bytes()).hexdigest()),
        "configs": np.array(CONFIGS, dtype=np.float64),
    }
    for k, (conf, iou, agnostic) in enumerate(CONFIGS):
        dets = non_max_suppression(torch.from_numpy(raw), conf, iou, agnostic=bool(agnostic), max_det=300)
        rows = []
        for i, d in enumerate(dets):
            d = d.clone()
            d[:, :4] = scale_boxes((imgsz, imgsz), d[:, :4], images[i].shape[:2])
            rows.append(np.concatenate([np.full((d.shape[0], 1), i), d.numpy()], axis=1))
        arrays[f"nms_{k}"] = np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 7))
    model = YOLO(str(onnx), task="detect")
    rows = []
    for i, im in enumerate(images):
        res = model.predict(
            im[..., ::-1].copy(), imgsz=imgsz, conf=PREDICT_CONF, iou=PREDICT_IOU, device="cpu", verbose=False
        )[0]
        b = res.boxes
        rows.append(
            np.concatenate(
                [np.full((len(b), 1), i), b.xyxy.numpy(), b.conf.numpy()[:, None], b.cls.numpy()[:, None]],
                axis=1,
            )
        )
    arrays["predict"] = np.concatenate(rows).astype(np.float64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Record ultralytics post-processing for parity tests.")
    p.add_argument("--onnx", type=Path, default=Path("deploy/triton/models/yolov8_demo/1/model.onnx"))
    p.add_argument("--out", type=Path, default=Path("tests/unit/inference/data/parity.npz"))
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--seed", type=int, default=20261125)
    a = p.parse_args(argv)
    print(build(a.onnx, a.out, a.n, a.seed))


if __name__ == "__main__":
    main()
