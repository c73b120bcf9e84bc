"""Detector throughput: Blindspot's service path next to ultralytics' own predict, same ONNX, same images.

    .venv/bin/python benchmarks/inference.py                      # CPU, 256 demo images, batch 16
    .venv/bin/python benchmarks/inference.py --images 1024 --triton local   # + local tritonserver (gRPC, HTTP)
    .venv/bin/python benchmarks/inference.py --triton 10.0.0.5:8001 --protocol grpc   # a GPU Triton

Measured in one run:

* ``service/onnxruntime``: ``services.inference.detector.Detector`` over the encoded JPEG bytes
  (decode + letterbox + ONNX Runtime in-process + numpy decode/NMS), the path ``inference.run`` takes
  with Triton off;
* ``service/triton-<protocol>``: the same path with the forward pass on Triton (``--triton``);
* ``ultralytics/predict`` (the anchor): ``YOLO(onnx).predict`` on the same JPEG files, same imgsz, batch,
  thresholds, run by the tools venv (``.venv-tools``, torch + ultralytics) in a subprocess.

The paths run alternately for ``--repeats`` rounds and each path's best round is reported (the machine
may be shared). Prints images/s for each and the ratio to the anchor (goal >= 1.0x).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_ONNX = REPO / "deploy" / "triton" / "models" / "yolov8_demo" / "1" / "model.onnx"
TOOLS_PY = REPO / ".venv-tools" / "bin" / "python"


def write_images(n: int, seed: int, out: Path) -> list[Path]:
    from tools.demo_data import generate

    paths = []
    for i, (img, _) in enumerate(generate(n, seed)):
        p = out / f"{i:06d}.jpg"
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        p.write_bytes(buf.getvalue())
        paths.append(p)
    return paths


def anchor(args: argparse.Namespace) -> None:
    """Runs inside .venv-tools: ultralytics predict throughput, printed as JSON."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    paths = sorted(Path(args.anchor_dir).glob("*.jpg"))
    model = YOLO(str(args.onnx), task="detect")
    kw = dict(imgsz=args.imgsz, conf=args.conf, iou=args.iou, device="cpu", verbose=False, batch=args.batch)
    list(model.predict([str(p) for p in paths[: args.batch]], stream=True, **kw))  # warm-up
    t0 = time.perf_counter()
    boxes = sum(len(r.boxes) for r in model.predict([str(p) for p in paths], stream=True, **kw))
    dt = time.perf_counter() - t0
    print(json.dumps({"images": len(paths), "seconds": dt, "boxes": boxes}))


def run_service(backend_name: str, settings: object, paths: list[Path], batch: int) -> dict[str, float]:
    from services.inference.detector import Detector
    from services.inference.runtime import make_backend

    backend, spec = make_backend(settings)  # type: ignore[arg-type]
    detector = Detector(backend, spec, settings.inference)  # type: ignore[attr-defined]
    data = [p.read_bytes() for p in paths]
    detector.detect(data[:batch])  # warm-up
    t0 = time.perf_counter()
    results = detector.detect(data)
    dt = time.perf_counter() - t0
    detector.close()
    boxes = sum(len(r.detections or ()) for r in results)
    return {"images": len(paths), "seconds": dt, "boxes": boxes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=77)
    p.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    p.add_argument("--imgsz", type=int, default=None, help="default: from the ONNX metadata")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--triton", default=None, help="'local' (start tritonserver) or host:port of a Triton")
    p.add_argument("--protocol", choices=["grpc", "http", "both"], default="both")
    p.add_argument("--repeats", type=int, default=2, help="rounds; each path's best round is reported")
    p.add_argument("--no-anchor", action="store_true", help="skip ultralytics (no .venv-tools)")
    p.add_argument("--anchor-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.anchor_dir:
        anchor(args)
        return

    from shared.settings import InferenceSettings, ModelSettings, Settings, TritonSettings

    base = Settings(
        models=ModelSettings(detector_onnx=args.onnx),
        inference=InferenceSettings(
            batch_size=args.batch, confidence=args.conf, nms_iou=args.iou, imgsz=args.imgsz
        ),
    )
    if args.imgsz is None:
        from services.inference.runtime import resolve_spec

        args.imgsz = resolve_spec(base).imgsz
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(args.images, args.seed, Path(tmp))
        print(f"{len(paths)} demo JPEGs, imgsz {args.imgsz}, batch {args.batch}, cpu count {os.cpu_count()}")
        if not args.no_anchor and not TOOLS_PY.exists():
            sys.exit(
                "no .venv-tools (torch + ultralytics) for the anchor; see tools/train_detector.py"
                " or pass --no-anchor"
            )
        handle = None
        if args.triton == "local":
            from blindspot.stack import triton as launcher

            handle = launcher.start(
                base, Path(tmp) / "triton", http_port=18110, grpc_port=18111, metrics_port=18112
            )
        try:
            # Alternate the paths and keep each one's best round: fair on a machine shared with others.
            for _ in range(args.repeats):
                if not args.no_anchor:
                    done = subprocess.run(
                        [
                            str(TOOLS_PY),
                            __file__,
                            "--anchor-dir",
                            tmp,
                            "--onnx",
                            str(args.onnx),
                            "--imgsz",
                            str(args.imgsz),
                            "--batch",
                            str(args.batch),
                            "--conf",
                            str(args.conf),
                            "--iou",
                            str(args.iou),
                        ],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                    )
                    if done.returncode != 0:
                        sys.exit(f"ultralytics anchor failed: {done.stderr[-2000:]}")
                    rows.append(("ultralytics/predict", json.loads(done.stdout.strip().splitlines()[-1])))
                rows.append(("service/onnxruntime", run_service("onnxruntime", base, paths, args.batch)))
                if args.triton:
                    protocols = ["grpc", "http"] if args.protocol == "both" else [args.protocol]
                    for proto in protocols:
                        if handle is not None:
                            url = handle.grpc_url if proto == "grpc" else handle.http_url
                        else:
                            url = args.triton
                        t = TritonSettings(enabled=True, url=url, protocol=proto)
                        s = base.model_copy(update={"triton": t})
                        rows.append((f"service/triton-{proto}", run_service(proto, s, paths, args.batch)))
        finally:
            if handle is not None:
                launcher.stop(handle)
    best: dict[str, dict[str, float]] = {}
    for name, r in rows:
        if name not in best or r["images"] / r["seconds"] > best[name]["images"] / best[name]["seconds"]:
            best[name] = r
    rows = list(best.items())
    anchor_ips = None
    print(f"{'path':<24} {'images/s':>9} {'boxes':>7} {'vs ultralytics':>15}")
    for name, r in rows:
        ips = r["images"] / r["seconds"]
        if name == "ultralytics/predict":
            anchor_ips = ips
        ratio = f"{ips / anchor_ips:.2f}x" if anchor_ips else "-"
        print(f"{name:<24} {ips:>9.1f} {int(r['boxes']):>7} {ratio:>15}")


if __name__ == "__main__":
    main()
