"""Inference backends: each one installed here gives the fp32 model's embeddings (within the
parity bound), refuses what it cannot do, and says which extra to install when missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from backend_helpers import (
    AMX_CPUINFO,
    AVX2_CPUINFO,
    PARITY,
    fake_cpuinfo,
    min_cosine,
    needs,
)

from liploc_ros.cli import main
from liploc_ros.device import cpu_has_bf16
from liploc_ros.errors import BackendUnavailableError, ConfigError, DeviceError
from liploc_ros.model import Embedder
from liploc_ros.model.backends import available_backends, create_runner

HAS_CUDA = torch.cuda.is_available()


def _openvino_bf16() -> bool:
    if not available_backends().count("openvino"):
        return False
    from liploc_ros.model.backends.openvino_backend import openvino_has_bf16

    return openvino_has_bf16()


@pytest.fixture(autouse=True)
def _fresh_cpu_probe():
    yield
    cpu_has_bf16.cache_clear()


@pytest.mark.parametrize(
    ("backend", "precision"),
    [
        pytest.param("torch", "bf16"),
        pytest.param("onnxruntime", "fp32", marks=needs("onnxruntime")),
        pytest.param("openvino", "fp32", marks=needs("openvino")),
        pytest.param(
            "openvino",
            "bf16",
            marks=[
                needs("openvino"),
                pytest.mark.skipif(
                    not _openvino_bf16(), reason="OpenVINO reports no bf16 on this CPU"
                ),
            ],
        ),
    ],
)
def test_backend_embeddings_are_within_the_parity_bound(tiny_vit, reference, backend, precision):
    x, camera, lidar = reference
    embedder = Embedder(tiny_vit, device="cpu", precision=precision, backend=backend, batch_size=2)
    assert (embedder.backend, embedder.precision) == (backend, precision)
    assert embedder.device == torch.device("cpu")
    got_camera, got_lidar = embedder.embed_camera(x), embedder.embed_lidar(x)
    assert got_camera.dtype == np.float32
    assert got_camera.shape == camera.shape
    assert min_cosine(got_camera, camera) >= PARITY
    assert min_cosine(got_lidar, lidar) >= PARITY
    # the encoders are not mixed up: each side's output is far from the other side's
    assert min_cosine(got_camera, lidar) < 0.9
    # the model normalises: unit vectors whatever the backend
    np.testing.assert_allclose(np.linalg.norm(got_camera, axis=1), 1.0, atol=1e-2)
    if precision == "fp32":  # an fp32 runtime agrees far tighter than the bound
        np.testing.assert_allclose(got_camera, camera, atol=1e-4)
        np.testing.assert_allclose(got_lidar, lidar, atol=1e-4)
    # a batch of one (the localizer) gives the same rows as a full batch
    np.testing.assert_allclose(embedder.embed_camera(x[2:3]), got_camera[2:3], atol=1e-2)


def test_torch_bf16_keeps_the_head_in_fp32_and_the_model_untouched(tiny_vit, reference):
    x, camera, _ = reference
    runner = create_runner("torch", tiny_vit, device="cpu", precision="bf16")
    assert next(runner._backbones["camera"].parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in tiny_vit.model.parameters())
    assert tiny_vit.model.projection_camera.layer_norm.weight.dtype == torch.float32
    got = runner.encode("camera", torch.from_numpy(x))
    assert min_cosine(got, camera) >= PARITY
    assert not np.allclose(got, camera, atol=1e-6)  # really computed in bf16


def test_auto_precision_follows_the_cpu_flags(tiny_vit, monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, AVX2_CPUINFO)
    assert Embedder(tiny_vit, device="cpu", backend="torch").precision == "fp32"
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    assert Embedder(tiny_vit, device="cpu", backend="torch").precision == "bf16"


@needs("onnxruntime")
def test_onnxruntime_runs_fp32_or_int8_on_the_cpu(tiny_vit):
    with pytest.raises(DeviceError, match=r"fp32 or int8 on the CPU, not bf16.*openvino"):
        Embedder(tiny_vit, device="cpu", precision="bf16", backend="onnxruntime")
    with pytest.raises(DeviceError, match="int8 runs in backend openvino or onnxruntime"):
        Embedder(tiny_vit, device="cpu", precision="int8", backend="torch")


@needs("openvino")
def test_openvino_refuses_what_it_would_silently_change(tiny_vit, monkeypatch, tmp_path):
    from liploc_ros.model.backends import openvino_backend

    with pytest.raises(DeviceError, match="fp32, bf16 or int8"):
        Embedder(tiny_vit, device="cpu", precision="fp16", backend="openvino")
    if HAS_CUDA:
        with pytest.raises(DeviceError, match="runs on the CPU"):
            Embedder(tiny_vit, device="cuda", backend="openvino")
    # OpenVINO itself would run f32 on a CPU it does not see bf16 on: refused, not downgraded
    monkeypatch.setattr(openvino_backend, "openvino_has_bf16", lambda: False)
    with pytest.raises(DeviceError, match="no bf16 support"):
        Embedder(tiny_vit, device="cpu", precision="bf16", backend="openvino")
    # auto wants both the flags and OpenVINO to agree
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    assert openvino_backend.resolve("auto", "auto")[1] == "fp32"
    monkeypatch.setattr(openvino_backend, "openvino_has_bf16", lambda: True)
    assert openvino_backend.resolve("auto", "auto") == (torch.device("cpu"), "bf16")
    fake_cpuinfo(monkeypatch, tmp_path, AVX2_CPUINFO)
    assert openvino_backend.resolve("cpu", "auto")[1] == "fp32"


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
@needs("onnxruntime")
def test_onnxruntime_on_cuda_without_a_gpu_is_an_error(tiny_vit):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        Embedder(tiny_vit, device="cuda", backend="onnxruntime")


@pytest.mark.parametrize(
    ("backend", "extra", "package"),
    [("openvino", "openvino", "openvino"), ("onnxruntime", "onnx", "onnxruntime")],
)
def test_a_missing_backend_names_the_extra_to_install(
    tiny_vit, monkeypatch, capsys, tmp_path, backend, extra, package
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a)
    )
    assert backend not in available_backends()
    with pytest.raises(BackendUnavailableError, match=rf"pip install 'liploc_ros\[{extra}\]'"):
        Embedder(tiny_vit, device="cpu", backend=backend)
    # the command line says the same, as an error line and exit code 1
    args = ["embed", "--model", str(tiny_vit.path), "--out", str(tmp_path / "e.npz")]
    args += ["--scans", str(tmp_path / "none.bin"), "--backend", backend]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"liploc_ros[{extra}]" in err
    assert package in err


def test_an_unknown_backend_lists_the_known_ones(tiny_vit):
    with pytest.raises(ConfigError, match="auto, torch, openvino, onnxruntime"):
        Embedder(tiny_vit, backend="tensorflow")
