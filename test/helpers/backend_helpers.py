"""Shared pieces of the inference backend tests: a tiny ViT saved to disk, fake CPU flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liploc_ros import device as device_mod
from liploc_ros.model import LoadedModel, create_model, load_model, model_preset, save_model
from liploc_ros.model.backends import missing_packages
from liploc_ros.preprocess import CameraConfig, PreprocessConfig

#: the issue's parity bound: embedding cosine to PyTorch fp32
PARITY = 0.999
SIZE = 32

AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu avx avx2 fma\n"


def save_tiny_vit(path: Path, seed: int = 0, *, normalize: bool = True) -> LoadedModel:
    """timm's 0.3 M-parameter test ViT at 32 px as a liploc model file (fast to convert)."""
    torch.manual_seed(seed)
    pre = PreprocessConfig(camera=CameraConfig(image_size=SIZE), lidar_image_size=SIZE)
    model = create_model(model_preset("test_vit", normalize=normalize), pre)
    with torch.no_grad():  # LayerNorms away from (1, 0), so a skipped one would show
        for name, tensor in model.state_dict().items():
            if "norm" in name and tensor.is_floating_point():
                tensor.add_(torch.rand(tensor.shape) * 0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model)
    return load_model(path)


def inputs(batch: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def needs(backend: str):
    """Skip unless ``backend``'s packages are installed, saying which are missing."""
    missing = missing_packages(backend)
    return pytest.mark.skipif(
        bool(missing), reason=f"backend {backend} not installed (missing {', '.join(missing)})"
    )


def fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    """Make the CPU probe read ``text`` as /proc/cpuinfo (undo: cpu_has_bf16.cache_clear)."""
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(device_mod, "CPUINFO_PATH", path)
    device_mod.cpu_has_bf16.cache_clear()
