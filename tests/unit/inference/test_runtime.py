"""Model spec discovery (input size, class names) and the in-process ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.inference.detector import Detector
from services.inference.runtime import OnnxRuntimeBackend, make_backend, read_class_file, resolve_spec
from shared.errors import ConfigurationError, InvalidInput
from shared.settings import InferenceSettings, ModelSettings, Settings
from tools.demo_data import CLASSES, generate


def test_spec_from_onnx_metadata() -> None:
    backend, spec = make_backend(Settings())
    assert isinstance(backend, OnnxRuntimeBackend)
    assert spec.imgsz == 256 and spec.class_names == CLASSES
    assert (spec.input_name, spec.output_name) == ("images", "output0")
    out = backend.infer(np.zeros((2, 3, 256, 256), np.float32))
    assert out.shape == (2, 4 + len(CLASSES), 1344)


def test_class_file_and_imgsz_settings_override(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("# my classes\na\nb\n\nc\nd\ne\n")
    yaml_names = tmp_path / "data.yaml"
    yaml_names.write_text("names:\n  0: x\n  1: y\n")
    assert read_class_file(yaml_names) == ("x", "y")
    s = Settings(models=ModelSettings(detector_classes=names), inference=InferenceSettings(imgsz=320))
    spec = resolve_spec(s)
    assert spec.class_names == ("a", "b", "c", "d", "e") and spec.imgsz == 320


def test_missing_onnx_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="BLINDSPOT_MODELS__DETECTOR_ONNX"):
        make_backend(Settings(models=ModelSettings(detector_onnx=tmp_path / "nope.onnx")))


def test_class_count_mismatch_is_reported(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("only\ntwo\n")
    s = Settings(models=ModelSettings(detector_classes=names))
    backend, spec = make_backend(s)
    detector = Detector(backend, spec, s.inference)
    img = np.asarray(generate(1, 0)[0][0])
    with pytest.raises(InvalidInput, match="outputs 5 classes but 2 class names"):
        detector.detect_arrays([img])
    detector.close()


def test_undecodable_bytes_become_a_row_error_not_a_crash() -> None:
    import io

    backend, spec = make_backend(Settings())
    detector = Detector(backend, spec, InferenceSettings(batch_size=2))
    buf = io.BytesIO()
    generate(1, 5)[0][0].save(buf, format="JPEG")
    results = detector.detect([b"not an image", buf.getvalue(), b""])
    assert [r.index for r in results] == [0, 1, 2]
    assert results[0].detections is None and "cannot decode image" in (results[0].error or "")
    assert results[1].detections is not None and results[1].error is None
    assert results[2].detections is None
    detector.close()
