"""Training precision on the CPU: bf16 autocast on request, fp32 under auto (not measured)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from backend_helpers import AMX_CPUINFO, AVX2_CPUINFO, fake_cpuinfo

from liploc_ros import device as device_mod
from liploc_ros.model import create_model, make_loss, model_preset
from liploc_ros.preprocess import CameraConfig, PreprocessConfig
from liploc_ros.training.distributed import DistInfo
from liploc_ros.training.train import train_step, training_precision

CPU = torch.device("cpu")


def test_auto_stays_fp32_for_training_even_with_bf16_units(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    try:
        assert device_mod.resolve_precision(CPU, "auto") == "bf16"  # inference does
        assert training_precision(CPU, "auto") == "fp32"  # training waits for a recall check
    finally:
        device_mod.cpu_has_bf16.cache_clear()


def test_bf16_training_steps_on_the_cpu_and_learns(monkeypatch, tmp_path, caplog):
    fake_cpuinfo(monkeypatch, tmp_path, AVX2_CPUINFO)
    device_mod._warn_emulated_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="liploc_ros.device"):
        assert training_precision(CPU, "bf16") == "bf16"
    device_mod.cpu_has_bf16.cache_clear()
    assert "emulated" in caplog.text
    pre = PreprocessConfig(camera=CameraConfig(image_size=32), lidar_image_size=32)
    torch.manual_seed(0)
    model = create_model(model_preset("test_vit"), pre, pretrained=False)
    loss_fn = make_loss("clip")
    optimizer = torch.optim.AdamW([*model.parameters(), *loss_fn.parameters()], lr=3e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    camera = torch.randn(8, 3, 32, 32)
    lidar = camera.flip(-1) + 0.1 * torch.randn(8, 3, 32, 32)
    before = model.projection_camera.fc.weight.detach().clone()
    losses = [
        train_step(
            model,
            loss_fn,
            optimizer,
            scaler,
            camera,
            lidar,
            DistInfo(),
            device=CPU,
            precision="bf16",
        )
        for _ in range(8)
    ]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]  # the same batch eight times: the loss must fall
    # weights stay fp32 (autocast computes in bf16, the optimizer updates fp32 masters)
    assert model.projection_camera.fc.weight.dtype == torch.float32
    assert not torch.equal(model.projection_camera.fc.weight, before)
