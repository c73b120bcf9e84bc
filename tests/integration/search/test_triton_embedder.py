"""The embedder served by the local tritonserver (Python backend + ONNX Runtime) gives the in-process
vectors, over gRPC and HTTP (the production config serves the same ONNX on the ONNX Runtime backend)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from blindspot.stack.triton import TritonHandle
from services.search.domain import decode, to_tensor
from services.search.embedder import TritonEmbedder
from shared.adapters.triton import Triton

pytestmark = [pytest.mark.integration, pytest.mark.triton]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_embedder_matches_onnxruntime(
    protocol: str, tritonserver: TritonHandle, embedder: Any, photos: dict[str, bytes]
) -> None:
    url = tritonserver.grpc_url if protocol == "grpc" else tritonserver.http_url
    client = Triton(url, protocol, timeout_s=60)  # type: ignore[arg-type]
    try:
        batch = np.stack([to_tensor(decode(photos[n])) for n in ("chelsea", "coffee", "rocket")])
        served = TritonEmbedder(client, "efficientnet_lite0").embed(batch)
        local = embedder.embed(batch)
        assert served.shape == (3, 1280)
        np.testing.assert_allclose(served, local, atol=1e-4)
    finally:
        client.close()
