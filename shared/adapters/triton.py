"""Triton Inference Server adapter (tritonclient): numpy in, numpy out, gRPC or HTTP.

Two faces over the same logic: ``AsyncTriton`` (``tritonclient.grpc.aio`` / ``tritonclient.http.aio``,
for FastAPI) and ``Triton`` (the blocking clients, for Celery workers). Both

* discover a model's tensors from the server (``model_info``: input/output names, dtypes, shapes,
  ``max_batch_size``) and cache it;
* split a batch larger than ``max_batch_size`` into several requests and concatenate the outputs;
* bound every call by ``timeout_s`` and retry calls that failed as *unavailable* (connection refused,
  gRPC UNAVAILABLE/DEADLINE_EXCEEDED, HTTP 5xx, timeouts) ``retries`` times with exponential backoff,
  then raise ``DependencyUnavailable`` (which the Celery house task retries later);
* raise ``TritonModelMissing`` at once, naming the model, the server and the models it does have,
  when the model is not in the repository (or failed to load).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from shared.errors import ConfigurationError, DependencyUnavailable
from shared.settings import TritonSettings

Protocol = Literal["grpc", "http"]
T = TypeVar("T")
MAX_BACKOFF_S = 10.0

_NP_OF_TRITON: dict[str, Any] = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


class TritonModelMissing(ConfigurationError):
    """The model is not in Triton's repository (or did not load): a configuration problem, not retried."""

    code = "triton_model_missing"


@dataclass(frozen=True)
class TensorSpec:
    """One model tensor. ``shape`` includes the batch dimension when the model batches (``-1`` = any)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> Any:
        return _NP_OF_TRITON.get(self.datatype, np.float32)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int  # 0 = the model does not batch (one request = one sample/first dim as given)

    def input(self, name: str | None = None) -> TensorSpec:
        return self.inputs[0] if name is None else next(t for t in self.inputs if t.name == name)


def parse_model_info(metadata: Mapping[str, Any], config: Mapping[str, Any]) -> ModelInfo:
    """Model metadata + config (the JSON shapes both protocols return) -> ``ModelInfo``."""
    config = config.get("config", config)

    def specs(items: Sequence[Mapping[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(str(t["name"]), str(t["datatype"]), tuple(int(d) for d in t.get("shape", ())))
            for t in items
        )

    return ModelInfo(
        name=str(metadata["name"]),
        versions=tuple(str(v) for v in metadata.get("versions", ())),
        platform=str(metadata.get("platform", "")),
        inputs=specs(metadata.get("inputs", ())),
        outputs=specs(metadata.get("outputs", ())),
        max_batch_size=int(config.get("max_batch_size", 0) or 0),
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether a failed call is worth retrying (the server is down, overloaded or slow)."""
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return True
    status = ""
    status_fn = getattr(exc, "status", None)
    if callable(status_fn):
        status = str(status_fn() or "")
    text = f"{status} {exc}".lower()
    markers = (
        "unavailable",
        "deadline_exceeded",
        "deadline exceeded",
        "failed to connect",
        "connection",
        "timed out",
        "timeout",
        "socket closed",
        "503",
        "502",
        "504",
        "resource_exhausted",
    )
    return any(m in text for m in markers)


def is_missing_model(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unknown model" in text or ("not found" in text and "model" in text) or "is not ready" in text


def _backoff(attempt: int, first_s: float) -> float:
    return float(min(MAX_BACKOFF_S, first_s * (2**attempt)))


def _chunks(n: int, max_batch: int) -> list[slice]:
    if max_batch <= 0 or n <= max_batch:
        return [slice(0, n)]
    return [slice(i, min(n, i + max_batch)) for i in range(0, n, max_batch)]


@dataclass(frozen=True)
class _Config:
    url: str
    protocol: Protocol
    timeout_s: float
    retries: int
    backoff_s: float

    @classmethod
    def of(cls, s: TritonSettings) -> _Config:
        return cls(s.url, s.protocol, s.timeout_s, s.retries, s.retry_backoff_s)


class _Base:
    def __init__(self, cfg: _Config) -> None:
        self.cfg = cfg
        self._info: dict[str, ModelInfo] = {}
        if cfg.protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            import tritonclient.http as mod  # type: ignore[no-redef]
        self._mod: Any = mod

    def _missing(
        self, model: str, available: list[str], cause: BaseException | None = None
    ) -> TritonModelMissing:
        return TritonModelMissing(
            f"Triton at {self.cfg.url} ({self.cfg.protocol}) has no ready model {model!r}"
            f" (ready: {', '.join(available) or 'none'}); check BLINDSPOT_TRITON__DETECTOR_MODEL and the"
            " model repository",
            context={
                "model": model,
                "url": self.cfg.url,
                "ready_models": available,
                "error": str(cause)[:300] if cause else None,
            },
        )

    def _unavailable(self, what: str, exc: BaseException) -> DependencyUnavailable:
        return DependencyUnavailable(
            f"Triton at {self.cfg.url} ({self.cfg.protocol}) did not answer {what} after"
            f" {self.cfg.retries + 1} attempts: {type(exc).__name__}: {str(exc)[:200]}",
            context={"url": self.cfg.url},
        )

    def _inputs(self, info: ModelInfo, arrays: Mapping[str, np.ndarray]) -> list[Any]:
        out = []
        for spec in info.inputs:
            if spec.name not in arrays:
                raise ValueError(f"model {info.name!r} needs input {spec.name!r}; got {sorted(arrays)}")
            arr = np.ascontiguousarray(arrays[spec.name], dtype=spec.dtype)
            t = self._mod.InferInput(spec.name, list(arr.shape), spec.datatype)
            if self.cfg.protocol == "http":
                t.set_data_from_numpy(arr, binary_data=True)
            else:
                t.set_data_from_numpy(arr)
            out.append(t)
        return out

    def _outputs(self, info: ModelInfo, names: Sequence[str] | None) -> list[Any]:
        wanted = list(names) if names else [o.name for o in info.outputs]
        if self.cfg.protocol == "http":
            return [self._mod.InferRequestedOutput(n, binary_data=True) for n in wanted]
        return [self._mod.InferRequestedOutput(n) for n in wanted]

    @staticmethod
    def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


class Triton(_Base):
    """Blocking client (Celery workers, CLI). One per process; ``close()`` when done."""

    def __init__(
        self,
        url: str,
        protocol: Protocol = "grpc",
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(_Config(url, protocol, timeout_s, retries, backoff_s))
        if protocol == "grpc":
            self._client = self._mod.InferenceServerClient(url)
        else:
            self._client = self._mod.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )

    @classmethod
    def from_settings(cls, s: TritonSettings) -> Triton:
        return cls(s.url, s.protocol, timeout_s=s.timeout_s, retries=s.retries, backoff_s=s.retry_backoff_s)

    def _kw(self) -> dict[str, Any]:
        return {"client_timeout": self.cfg.timeout_s} if self.cfg.protocol == "grpc" else {}

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.cfg.retries + 1):
            try:
                return fn()
            except Exception as exc:
                if is_missing_model(exc) or not is_unavailable(exc):
                    raise
                if attempt == self.cfg.retries:
                    raise self._unavailable(what, exc) from exc
                time.sleep(_backoff(attempt, self.cfg.backoff_s))
        raise AssertionError("unreachable")  # pragma: no cover

    def is_server_ready(self) -> bool:
        return bool(self._call("server readiness", lambda: self._client.is_server_ready(**self._kw())))

    def is_model_ready(self, model: str) -> bool:
        return bool(self._call("model readiness", lambda: self._client.is_model_ready(model, **self._kw())))

    def ready_models(self) -> list[str]:
        kw = {"as_json": True, **self._kw()} if self.cfg.protocol == "grpc" else {}
        index = self._call("repository index", lambda: self._client.get_model_repository_index(**kw))
        items = index.get("models", []) if isinstance(index, dict) else index
        return sorted(str(m["name"]) for m in items if m.get("state") == "READY")

    def model_info(self, model: str) -> ModelInfo:
        """Tensors and batch size of ``model``; ``TritonModelMissing`` if it is not ready."""
        if model in self._info:
            return self._info[model]
        if not self.is_model_ready(model):
            raise self._missing(model, self.ready_models())
        kw = {"as_json": True, **self._kw()} if self.cfg.protocol == "grpc" else {}
        try:
            meta = self._call("model metadata", lambda: self._client.get_model_metadata(model, **kw))
            conf = self._call("model config", lambda: self._client.get_model_config(model, **kw))
        except Exception as exc:
            if is_missing_model(exc):
                raise self._missing(model, self.ready_models(), exc) from exc
            raise
        info = self._info[model] = parse_model_info(meta, conf)
        return info

    def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run ``model``; a batch above ``max_batch_size`` goes as several requests."""
        info = self.model_info(model)
        n = next(iter(inputs.values())).shape[0]
        parts = []
        for sl in _chunks(n, info.max_batch_size):
            req = self._inputs(info, {k: v[sl] for k, v in inputs.items()})
            outs = self._outputs(info, outputs)

            def call(req: list[Any] = req, outs: list[Any] = outs) -> Any:
                return self._client.infer(model, req, outputs=outs, **self._kw())

            try:
                result = self._call("infer", call)
            except Exception as exc:
                if is_missing_model(exc):
                    self._info.pop(model, None)
                    raise self._missing(model, self.ready_models(), exc) from exc
                raise
            parts.append({o.name(): result.as_numpy(o.name()) for o in outs})
        return self._merge(parts)

    def close(self) -> None:
        self._client.close()


class AsyncTriton(_Base):
    """Asyncio client (FastAPI apps): ``tritonclient.grpc.aio`` or ``tritonclient.http.aio``."""

    def __init__(
        self,
        url: str,
        protocol: Protocol = "grpc",
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(_Config(url, protocol, timeout_s, retries, backoff_s))
        if protocol == "grpc":
            import tritonclient.grpc.aio as aio
        else:
            import tritonclient.http.aio as aio  # type: ignore[no-redef]
        self._client: Any = aio.InferenceServerClient(url)

    @classmethod
    def from_settings(cls, s: TritonSettings) -> AsyncTriton:
        return cls(s.url, s.protocol, timeout_s=s.timeout_s, retries=s.retries, backoff_s=s.retry_backoff_s)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.cfg.retries + 1):
            try:
                return await asyncio.wait_for(fn(), self.cfg.timeout_s)
            except Exception as exc:
                if is_missing_model(exc) or not is_unavailable(exc):
                    raise
                if attempt == self.cfg.retries:
                    raise self._unavailable(what, exc) from exc
                await asyncio.sleep(_backoff(attempt, self.cfg.backoff_s))
        raise AssertionError("unreachable")  # pragma: no cover

    async def is_server_ready(self) -> bool:
        return bool(await self._call("server readiness", lambda: self._client.is_server_ready()))

    async def is_model_ready(self, model: str) -> bool:
        return bool(await self._call("model readiness", lambda: self._client.is_model_ready(model)))

    async def ready_models(self) -> list[str]:
        kw = {"as_json": True} if self.cfg.protocol == "grpc" else {}
        index = await self._call("repository index", lambda: self._client.get_model_repository_index(**kw))
        items = index.get("models", []) if isinstance(index, dict) else index
        return sorted(str(m["name"]) for m in items if m.get("state") == "READY")

    async def model_info(self, model: str) -> ModelInfo:
        if model in self._info:
            return self._info[model]
        if not await self.is_model_ready(model):
            raise self._missing(model, await self.ready_models())
        kw = {"as_json": True} if self.cfg.protocol == "grpc" else {}
        meta = await self._call("model metadata", lambda: self._client.get_model_metadata(model, **kw))
        conf = await self._call("model config", lambda: self._client.get_model_config(model, **kw))
        info = self._info[model] = parse_model_info(meta, conf)
        return info

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        info = await self.model_info(model)
        n = next(iter(inputs.values())).shape[0]

        async def one(sl: slice) -> dict[str, np.ndarray]:
            req = self._inputs(info, {k: v[sl] for k, v in inputs.items()})
            outs = self._outputs(info, outputs)
            try:
                result = await self._call("infer", lambda: self._client.infer(model, req, outputs=outs))
            except Exception as exc:
                if is_missing_model(exc):
                    self._info.pop(model, None)
                    raise self._missing(model, await self.ready_models(), exc) from exc
                raise
            return {o.name(): result.as_numpy(o.name()) for o in outs}

        # Chunks go concurrently: Triton's dynamic batcher packs them onto the model instances.
        parts = await asyncio.gather(*(one(sl) for sl in _chunks(n, info.max_batch_size)))
        return self._merge(list(parts))

    async def close(self) -> None:
        await self._client.close()
