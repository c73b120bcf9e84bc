"""Where the detector's forward pass runs: ONNX Runtime in-process (the embedded default) or Triton.

Both backends take the float32 ``[B, 3, S, S]`` letterboxed batch and return the raw YOLOv8 output
``[B, 4 + nc, N]``; ``ModelSpec`` says what the detector expects (input size, class names), read from
the settings, else the ONNX file's ultralytics metadata, else Triton's model metadata.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.adapters.triton import ModelInfo, Triton
from shared.errors import ConfigurationError
from shared.settings import Settings

DEFAULT_IMGSZ = 640


class Backend(Protocol):
    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """``[B, 3, S, S]`` float32 -> ``[B, 4 + nc, N]`` float32."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelSpec:
    imgsz: int
    class_names: tuple[str, ...]
    input_name: str = "images"
    output_name: str = "output0"


def _names_from_metadata(meta: dict[str, str]) -> tuple[str, ...] | None:
    raw = meta.get("names")
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        return tuple(str(names[k]) for k in sorted(names))
    if isinstance(names, list):
        return tuple(str(n) for n in names)
    return None


def _imgsz_from_metadata(meta: dict[str, str]) -> int | None:
    raw = meta.get("imgsz")
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, (list, tuple)) and value:
        return int(value[0])
    return int(value) if isinstance(value, int) else None


def read_class_file(path: Path) -> tuple[str, ...]:
    """One class name a line (blank lines and ``#`` comments ignored); YAML ``names:`` lists work too."""
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        data = yaml.safe_load(path.read_text())
        names = data.get("names", data) if isinstance(data, dict) else data
        if isinstance(names, dict):
            return tuple(str(names[k]) for k in sorted(names))
        return tuple(str(n) for n in names)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return tuple(ln for ln in lines if ln and not ln.startswith("#"))


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ConfigurationError(
            f"BLINDSPOT_MODELS__DETECTOR_ONNX: no ONNX file at {path}; export a YOLOv8 model"
            " (docs/inference.md) or point the setting at yours"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle ORT threads must sleep, not spin: image decoding runs beside them on the same cores
    # (measured +50 % images/s on a shared 2-core machine).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def resolve_spec(
    settings: Settings, session: Any | None = None, triton: ModelInfo | None = None
) -> ModelSpec:
    """Input size and class names: settings first, then the ONNX metadata, then Triton's shapes."""
    meta: dict[str, str] = {}
    onnx_path = Path(settings.models.detector_onnx)
    if session is None and onnx_path.is_file():
        session = onnx_session(onnx_path, 1)
    static: int | None = None
    input_name, output_name = "images", "output0"
    if session is not None:
        meta = dict(session.get_modelmeta().custom_metadata_map)
        inp = session.get_inputs()[0]
        input_name, output_name = inp.name, session.get_outputs()[0].name
        if isinstance(inp.shape[-1], int):
            static = int(inp.shape[-1])
    if triton is not None:
        input_name, output_name = triton.inputs[0].name, triton.outputs[0].name
        if triton.inputs[0].shape and triton.inputs[0].shape[-1] > 0:
            static = static or triton.inputs[0].shape[-1]
    imgsz = settings.inference.imgsz or static or _imgsz_from_metadata(meta) or DEFAULT_IMGSZ
    names: tuple[str, ...] | None = None
    if settings.models.detector_classes is not None:
        names = read_class_file(Path(settings.models.detector_classes))
    if not names:
        names = _names_from_metadata(meta)
    if not names:
        sidecar = onnx_path.parent.parent / "classes.txt"
        names = read_class_file(sidecar) if sidecar.is_file() else None
    if not names:
        raise ConfigurationError(
            "the detector's class names are unknown: set BLINDSPOT_MODELS__DETECTOR_CLASSES to a file with"
            " one name a line (the ONNX has no ultralytics 'names' metadata)"
        )
    return ModelSpec(imgsz=imgsz, class_names=names, input_name=input_name, output_name=output_name)


class OnnxRuntimeBackend:
    """The ONNX in-process on the CPU (BLINDSPOT_TRITON__ENABLED=false)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0) -> None:
        self.session = onnx_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self.session = None


class TritonBackend:
    """The model on a Triton server (gRPC or HTTP), through shared.adapters.triton."""

    name = "triton"

    def __init__(self, client: Triton, model: str) -> None:
        self.client = client
        self.model = model
        self.info = client.model_info(model)  # TritonModelMissing here, at start, if it is not there
        self.input_name = self.info.inputs[0].name
        self.output_name = self.info.outputs[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.client.infer(self.model, {self.input_name: batch}, [self.output_name])
        return out[self.output_name]

    def close(self) -> None:
        self.client.close()


def make_backend(settings: Settings) -> tuple[Backend, ModelSpec]:
    """The configured backend and the model's spec (built once per worker/app)."""
    if settings.triton.enabled:
        triton = TritonBackend(Triton.from_settings(settings.triton), settings.triton.detector_model)
        return triton, resolve_spec(settings, triton=triton.info)
    local = OnnxRuntimeBackend(Path(settings.models.detector_onnx), settings.inference.onnx_threads)
    return local, resolve_spec(settings, session=local.session)
