"""The Triton adapter's own logic: metadata parsing, batching, retry/backoff against a closed port.

The calls against a live tritonserver are in tests/integration/inference/test_triton_e2e.py.
"""

from __future__ import annotations

import socket
import time

import pytest

from shared.adapters.triton import (
    AsyncTriton,
    Triton,
    _chunks,
    is_missing_model,
    is_unavailable,
    parse_model_info,
)
from shared.errors import DependencyUnavailable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_parse_grpc_json_and_http_shapes() -> None:
    grpc_meta = {
        "name": "det",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": ["-1", "3", "640", "640"]}],
        "outputs": [{"name": "output0", "datatype": "FP32", "shape": ["-1", "84", "8400"]}],
    }
    info = parse_model_info(grpc_meta, {"config": {"name": "det", "max_batch_size": 16}})
    assert info.max_batch_size == 16
    assert info.inputs[0].shape == (-1, 3, 640, 640) and info.inputs[0].dtype.__name__ == "float32"
    assert info.outputs[0].name == "output0"
    # gRPC JSON omits max_batch_size when it is 0 (proto3 default)
    assert parse_model_info(grpc_meta, {"config": {"name": "det"}}).max_batch_size == 0
    http_meta = {**grpc_meta, "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, 3, -1, -1]}]}
    http = parse_model_info(http_meta, {"name": "det", "max_batch_size": 8})
    assert http.input().shape == (-1, 3, -1, -1) and http.input("images").datatype == "UINT8"


def test_chunks_respect_max_batch_size() -> None:
    assert _chunks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert _chunks(3, 0) == [slice(0, 3)]
    assert _chunks(4, 4) == [slice(0, 4)]


def test_error_classification() -> None:
    from tritonclient.utils import InferenceServerException

    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(
        InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")
    )
    assert not is_unavailable(InferenceServerException("unexpected shape for input 'images'", status="400"))
    assert is_missing_model(InferenceServerException("Request for unknown model: 'nope' is not found"))
    assert not is_missing_model(InferenceServerException("unexpected shape for input 'images'"))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unavailable_server_retries_with_backoff_then_raises(protocol: str) -> None:
    client = Triton(f"127.0.0.1:{_closed_port()}", protocol, timeout_s=2, retries=2, backoff_s=0.1)  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(DependencyUnavailable, match="after 3 attempts"):
        client.is_server_ready()
    assert time.monotonic() - t0 >= 0.1 + 0.2  # two backoffs: 0.1 s then 0.2 s
    client.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_async_unavailable_server_raises_dependency_unavailable(protocol: str) -> None:
    client = AsyncTriton(f"127.0.0.1:{_closed_port()}", protocol, timeout_s=2, retries=1, backoff_s=0.05)  # type: ignore[arg-type]
    with pytest.raises(DependencyUnavailable, match="after 2 attempts"):
        await client.is_model_ready("yolov8_demo")
    await client.close()
