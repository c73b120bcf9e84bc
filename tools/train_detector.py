"""Train the Blindspot demo detector (YOLOv8n from scratch on tools.demo_data) and export it to ONNX.

Development-time only: needs the git-ignored tools venv with torch + ultralytics::

    python3.11 -m venv .venv-tools
    .venv-tools/bin/pip install torch==2.14.1 torchvision==0.29.1
    .venv-tools/bin/pip install ultralytics onnx onnxruntime onnxslim
    .venv/bin/python -m tools.demo_data --out artifacts/demo_data --n 2000 --seed 0
    .venv-tools/bin/python -m tools.train_detector --data artifacts/demo_data/data.yaml --hours 0.9

It trains from ``yolov8n.yaml`` (random init: no pretrained weights are downloaded), on the CPU, with
plots and the AMP check off so nothing is fetched at run time, then calls ``tools.export_detector``
which writes ``deploy/triton/models/yolov8_demo/1/model.onnx`` + ``classes.txt`` and a
``training.json`` record (metrics, wall time, versions) next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "deploy" / "triton" / "models" / "yolov8_demo"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train YOLOv8n on the demo dataset and export ONNX.")
    p.add_argument("--data", type=Path, default=REPO / "artifacts" / "demo_data" / "data.yaml")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hours", type=float, default=None, help="wall-time budget (overrides --epochs)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", type=Path, default=REPO / "artifacts" / "train")
    p.add_argument("--name", default="yolov8n_demo")
    p.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    a = p.parse_args(argv)

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO, settings  # development-time dependency only

    known = {"sync": False, "hub": False, "wandb": False, "tensorboard": False, "mlflow": False}
    settings.update({k: v for k, v in known.items() if k in settings})
    model = YOLO("yolov8n.yaml")
    t0 = time.time()
    extra = {"time": a.hours} if a.hours else {}
    model.train(
        data=str(a.data),
        imgsz=a.imgsz,
        epochs=a.epochs,
        batch=a.batch,
        workers=a.workers,
        device="cpu",
        amp=False,
        plots=False,
        seed=a.seed,
        deterministic=True,
        project=str(a.project),
        name=a.name,
        exist_ok=True,
        pretrained=False,
        patience=100,
        cache="ram",
        val=True,
        close_mosaic=max(1, a.epochs // 8),
        verbose=True,
        **extra,
    )
    train_s = time.time() - t0
    best = Path(model.trainer.best)
    best_model = YOLO(str(best))
    metrics = best_model.val(data=str(a.data), imgsz=a.imgsz, batch=a.batch, device="cpu", plots=False)
    record = {
        "train_seconds": round(train_s, 1),
        "epochs_run": int(model.trainer.epoch) + 1,
        "imgsz": a.imgsz,
        "batch": a.batch,
        "seed": a.seed,
        "data": str(a.data),
        "val_map50": round(float(metrics.box.map50), 4),
        "val_map50_95": round(float(metrics.box.map), 4),
        "val_map50_per_class": {
            best_model.names[int(c)]: round(float(v), 4)
            for c, v in zip(metrics.box.ap_class_index, metrics.box.ap50, strict=True)
        },
    }
    from tools.export_detector import export

    export(best, a.model_dir, imgsz=a.imgsz, record=record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
