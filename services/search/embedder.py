"""The image embedding model: EfficientNet-Lite0 ONNX, in-process (ONNX Runtime) or served by Triton.

Both take preprocessed batches (``domain.to_tensor``: float32 [N, 3, 224, 224]) and return L2-normalised
float32 [N, 1280] (the normalisation is inside the graph; it is re-applied here against drift).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from services.search.domain import DIM
from shared.errors import ConfigurationError
from shared.settings import Settings

INPUT, OUTPUT = "images", "embeddings"


class Embedder(Protocol):
    name: str

    def embed(self, batch: np.ndarray) -> np.ndarray: ...


def _normalise(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32).reshape(-1, DIM)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


class OnnxEmbedder:
    """ONNX Runtime on the CPU, one session per process (sessions are thread-safe for ``run``)."""

    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise ConfigurationError(
                f"embedding model not found at {path} (BLINDSPOT_MODELS__EMBEDDER_ONNX);"
                " regenerate it with tools/export_embedder.py"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        (out,) = self._session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})
        return _normalise(out)


class TritonEmbedder:
    """The same model served by Triton (``BLINDSPOT_TRITON__ENABLED=true``), via shared/adapters/triton.py."""

    name = "triton"

    def __init__(self, client: Any, model: str) -> None:
        self._client = client
        self._model = model

    def embed(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        out = self._client.infer(
            self._model, {INPUT: np.ascontiguousarray(batch, dtype=np.float32)}, [OUTPUT]
        )
        return _normalise(out[OUTPUT])


_lock = threading.Lock()
_cache: dict[str, Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """The process's embedder, built once (loading the model costs ~0.3 s)."""
    key = "triton" if settings.triton.enabled else str(settings.models.embedder_onnx)
    with _lock:
        emb = _cache.get(key)
        if emb is None:
            if settings.triton.enabled:
                from shared.adapters.triton import Triton

                emb = TritonEmbedder(Triton.from_settings(settings.triton), settings.triton.embedder_model)
            else:
                emb = OnnxEmbedder(settings.models.embedder_onnx, threads=settings.search.onnx_threads)
            _cache[key] = emb
        return emb
