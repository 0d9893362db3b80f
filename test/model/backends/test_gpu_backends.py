"""The GPU paths, run where a CUDA GPU is lent: torch fp16 / bf16, ONNX Runtime's CUDA
provider, and TensorRT on the exported ONNX. On CPU-only machines they skip, saying why."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from backend_helpers import PARITY, min_cosine

from liploc_ros.model import Embedder

HAS_CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none on this machine)"),
]


@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16", "fp32"])
def test_torch_on_cuda(tiny_vit, reference, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16")
    x, camera, lidar = reference
    embedder = Embedder(tiny_vit, device="cuda", precision=precision)
    assert embedder.precision == ("fp16" if precision == "auto" else precision)
    assert min_cosine(embedder.embed_camera(x), camera) >= PARITY
    assert min_cosine(embedder.embed_lidar(x), lidar) >= PARITY


def test_onnxruntime_cuda_provider(tiny_vit, reference, tmp_path):
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime not installed (pip install 'liploc_ros[onnx]')")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    x, camera, lidar = reference
    embedder = Embedder(tiny_vit, device="cuda", backend="onnxruntime", cache_dir=tmp_path)
    assert min_cosine(embedder.embed_camera(x), camera) >= PARITY
    assert min_cosine(embedder.embed_lidar(x), lidar) >= PARITY


def test_tensorrt_runs_the_exported_onnx(tiny_vit, reference, tmp_path):
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT's Python package is not installed (pip install tensorrt)")
    import tensorrt as trt

    from liploc_ros.deploy import export_model

    manifest = export_model(tiny_vit, tmp_path, "onnx", max_batch=8)
    x, camera, _ = reference
    size = x.shape[-1]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((tmp_path / manifest["encoders"]["camera"]["file"]).read_bytes())
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, size, size), (1, 3, size, size), (8, 3, size, size))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config)
    )
    context = engine.create_execution_context()
    image = torch.from_numpy(x).cuda()
    out = torch.empty((len(x), tiny_vit.embed_dim), device="cuda")
    context.set_input_shape("image", tuple(image.shape))
    context.set_tensor_address("image", image.data_ptr())
    context.set_tensor_address("embedding", out.data_ptr())
    assert context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    assert min_cosine(out.cpu().numpy(), camera) >= PARITY
