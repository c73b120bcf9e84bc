"""Triton Python-backend model: serves a YOLOv8 ONNX export through ONNX Runtime on the CPU.

Used by the local stack (tritonserver from nvidia-pytriton has only the Python backend). The ONNX file is
``<version dir>/model.onnx`` (the launcher links it there); input ``images`` [B, 3, H, W] FP32,
output ``output0`` [B, 4 + nc, N] FP32, exactly as the production ONNX Runtime / TensorRT model.
Runs inside Triton's Python stub: imports only numpy, onnxruntime and triton_python_backend_utils.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        opts.inter_op_num_threads = 1
        # sleep rather than spin between requests: the server shares its cores with the clients
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        # Dynamic batching hands us several requests: run them as one ONNX batch, then split.
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        sizes = [a.shape[0] for a in arrays]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        out = self.session.run([self.output_name], {self.input_name: batch.astype(np.float32, copy=False)})[0]
        responses = []
        start = 0
        for n in sizes:
            tensor = pb_utils.Tensor(self.output_name, np.ascontiguousarray(out[start : start + n]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += n
        return responses

    def finalize(self):
        self.session = None
