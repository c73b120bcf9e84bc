"""Export a trained ultralytics YOLOv8 checkpoint to the ONNX layout Blindspot serves.

Writes ``MODEL_DIR/1/model.onnx`` (dynamic batch, fixed square ``imgsz``, opset 17, output
``output0`` shaped ``[B, 4 + nc, N]``), ``MODEL_DIR/classes.txt`` (one class name a line) and, when
given, ``MODEL_DIR/training.json``. Development-time only (imports ultralytics inside ``export``)::

    .venv-tools/bin/python -m tools.export_detector artifacts/train/yolov8n_demo/weights/best.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "deploy" / "triton" / "models" / "yolov8_demo"


def export(weights: Path, model_dir: Path, imgsz: int, record: dict[str, Any] | None = None) -> Path:
    """Export ``weights`` to ``model_dir/1/model.onnx``; returns the ONNX path."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(str(weights))
    # dynamic=True makes batch (and H/W) symbolic; Blindspot always feeds imgsz x imgsz letterboxes.
    onnx_path = Path(
        model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17, device="cpu")
    )
    dest = model_dir / "1" / "model.onnx"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, dest)
    names = [model.names[i] for i in sorted(model.names)]
    (model_dir / "classes.txt").write_text("\n".join(names) + "\n")
    info = dict(record or {})
    info.update(
        {
            "onnx_sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
            "onnx_bytes": dest.stat().st_size,
            "ultralytics": ultralytics.__version__,
            "python": platform.python_version(),
            "classes": names,
        }
    )
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    (model_dir / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return dest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Export a YOLOv8 .pt to Blindspot's ONNX layout.")
    p.add_argument("weights", type=Path)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    a = p.parse_args(argv)
    print(export(a.weights, a.model_dir, a.imgsz))


if __name__ == "__main__":
    main()
