"""The GPU paths, run where a CUDA GPU is lent (``bench/gpu_check.sh``): torch fp16 / bf16,
ONNX Runtime's CUDA and TensorRT providers, TensorRT engines from ``liploc export``, and
``auto`` on CUDA. On CPU-only machines they skip, saying why."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from backend_helpers import PARITY, inputs, min_cosine

from liploc_ros.model import Embedder
from liploc_ros.model.backends import auto, create_runner

HAS_CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none on this machine)"),
]


def _providers() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime not installed (pip install onnxruntime-gpu)")
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _tensorrt():
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT's Python package is not installed (pip install tensorrt-cu12)")
    import tensorrt as trt

    return trt


@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16", "fp32"])
def test_torch_on_cuda(tiny_vit, reference, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16")
    x, camera, lidar = reference
    embedder = Embedder(tiny_vit, device="cuda", precision=precision, backend="torch")
    assert embedder.precision == ("fp16" if precision == "auto" else precision)
    assert min_cosine(embedder.embed_camera(x), camera) >= PARITY
    assert min_cosine(embedder.embed_lidar(x), lidar) >= PARITY


def test_auto_on_cuda_keeps_a_small_encoder_in_torch_fp16(tiny_vit, reference, tmp_path):
    x, camera, _ = reference
    embedder = Embedder(tiny_vit, device="cuda", cache_dir=tmp_path)
    assert (embedder.backend, embedder.precision) == ("torch", "fp16")
    assert min_cosine(embedder.embed_camera(x), camera) >= PARITY


def test_auto_on_cuda_measures_and_verifies_a_large_encoder(tiny_vit, reference, tmp_path,
                                                            monkeypatch):  # fmt: skip
    monkeypatch.setattr(auto, "SMALL_GFLOPS", 0.0)
    x, camera, _ = reference
    runner = create_runner("auto", tiny_vit, device="cuda", cache_dir=tmp_path)
    got = runner.encode("camera", torch.from_numpy(x))
    decision = runner.decisions["camera"]
    assert decision.backend in ("torch", "onnxruntime")
    assert decision.measured["torch fp32"] is not None
    assert min_cosine(got, camera) >= 0.99
    if decision.precision != "fp32":
        assert decision.verification["passed"]


def test_onnxruntime_cuda_provider(tiny_vit, reference, tmp_path):
    if "CUDAExecutionProvider" not in _providers():
        pytest.skip("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    x, camera, lidar = reference
    embedder = Embedder(tiny_vit, device="cuda", backend="onnxruntime", precision="fp32",
                        cache_dir=tmp_path)  # fmt: skip
    assert min_cosine(embedder.embed_camera(x), camera) >= PARITY
    assert min_cosine(embedder.embed_lidar(x), lidar) >= PARITY


def test_onnxruntime_tensorrt_provider_fp16(tiny_vit, reference, tmp_path):
    if "TensorrtExecutionProvider" not in _providers():
        pytest.skip("this onnxruntime has no TensorRT provider")
    x, camera, _ = reference
    embedder = Embedder(tiny_vit, device="cuda", backend="onnxruntime", precision="fp16",
                        cache_dir=tmp_path)  # fmt: skip
    assert embedder.precision == "fp16"
    assert min_cosine(embedder.embed_camera(x), camera) >= 0.99
    assert any((tmp_path).rglob("tensorrt/*"))  # the engine is kept for the next start


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_liploc_export_builds_tensorrt_engines(tiny_vit, reference, tmp_path, precision):
    trt = _tensorrt()
    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip(f"TensorRT {trt.__version__} builds fp16 from fp16-typed graphs only")
    from liploc_ros.deploy.export import export_model, read_export
    from liploc_ros.deploy.tensorrt_export import EngineRunner

    manifest = export_model(tiny_vit, tmp_path, "tensorrt", precision=precision, max_batch=8)
    assert read_export(tmp_path)["fingerprint"] == tiny_vit.fingerprint
    sidecar = json.loads((tmp_path / "camera.plan.json").read_text())
    assert (sidecar["precision"], manifest["gpu"]) == (precision, torch.cuda.get_device_name())
    x, camera, lidar = reference
    for side, expected in (("camera", camera), ("lidar", lidar)):
        engine = EngineRunner(tmp_path / f"{side}.plan", tiny_vit.embed_dim)
        got = engine(torch.from_numpy(x)).cpu().numpy()
        torch.cuda.synchronize()
        bound = PARITY if precision == "fp32" else 0.99
        assert min_cosine(got, expected) >= bound
    one = EngineRunner(tmp_path / "camera.plan", tiny_vit.embed_dim)(torch.from_numpy(inputs(1)))
    assert one.shape == (1, tiny_vit.embed_dim)
    assert np.isfinite(one.cpu().numpy()).all()
