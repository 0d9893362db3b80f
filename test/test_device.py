"""Device and precision choice: explicit requests are honoured or refused, never downgraded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liploc_ros.device import autocast, inference, resolve_device, resolve_precision
from liploc_ros.errors import DeviceError

HAS_CUDA = torch.cuda.is_available()


def test_auto_picks_cuda_only_when_available():
    assert resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:1")


def test_unknown_devices_and_precisions_are_errors():
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(DeviceError, match="unsupported device type 'meta'"):
        resolve_device("meta")
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        resolve_precision(torch.device("cpu"), "fp8")


def test_cpu_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, "auto") == "fp32"
    assert resolve_precision(cpu, "fp32") == "fp32"
    assert resolve_precision(cpu, "bf16") == "bf16"  # only when asked for
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        resolve_precision(cpu, "fp16")


def test_autocast_on_cpu():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("cpu", "auto") as chosen:
        assert chosen == "fp32"
        assert layer(x).dtype == torch.float32
    with autocast("cpu", "bf16") as chosen:
        assert chosen == "bf16"
        assert layer(x).dtype == torch.bfloat16
    with inference("cpu") as chosen:
        assert chosen == "fp32"
        assert torch.is_inference_mode_enabled()
        assert layer(x).dtype == torch.float32
    assert not torch.is_inference_mode_enabled()


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_encoders_under_fp16_autocast_on_cuda():
    from liploc_ros.model import Embedder, LoadedModel, create_model, model_preset

    torch.manual_seed(0)
    model = create_model(model_preset("liploc-vit-s16")).eval()
    loaded = LoadedModel(model, model.config, model.preprocess, "0" * 16, "0" * 64)
    batch = np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32)
    fp16 = Embedder(loaded, device="cuda", precision="fp16").embed_camera(batch)
    fp32 = Embedder(loaded, device="cuda", precision="fp32").embed_lidar(batch)
    fp32_cam = Embedder(loaded, device="cuda", precision="fp32").embed_camera(batch)
    assert fp16.dtype == np.float32
    assert np.isfinite(fp16).all()
    cos = (
        (fp16 * fp32_cam).sum(1) / np.linalg.norm(fp16, axis=1) / np.linalg.norm(fp32_cam, axis=1)
    )
    assert cos.min() > 0.999
    assert not np.allclose(fp32, fp32_cam)  # the two encoders are distinct
