"""Device and precision choice: explicit requests are honoured or refused, never downgraded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liploc_ros import device as device_mod
from liploc_ros.device import (
    autocast,
    cpu_has_bf16,
    inference,
    read_cpu_flags,
    resolve_device,
    resolve_precision,
)
from liploc_ros.errors import DeviceError

HAS_CUDA = torch.cuda.is_available()

# /proc/cpuinfo excerpts: a Sapphire Rapids Xeon (AMX), a Zen 4 EPYC (AVX512-BF16 only), a
# Zen 2 EPYC and a Cascade Lake Xeon (AVX-512 and VNNI, no BF16): bf16 matrix units or not
CPUINFO_AMX = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+"
    "\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)
CPUINFO_ZEN4 = "processor\t: 0\nflags\t\t: fpu avx avx2 avx512f avx512_bf16 avx512_vnni\n"
CPUINFO_ZEN2 = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n"
CPUINFO_CASCADE_LAKE = "processor\t: 0\nflags\t\t: fpu avx avx2 avx512f avx512bw avx512_vnni\n"


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """Point the CPU probe at a fake /proc/cpuinfo with the given text."""

    def fake(text: str | None) -> None:
        path = tmp_path / "cpuinfo"
        if text is None:
            path = tmp_path / "no-such-cpuinfo"
        else:
            path.write_text(text)
        monkeypatch.setattr(device_mod, "CPUINFO_PATH", path)
        cpu_has_bf16.cache_clear()

    yield fake
    cpu_has_bf16.cache_clear()


@pytest.mark.parametrize(
    ("text", "has_bf16"),
    [
        (CPUINFO_AMX, True),
        (CPUINFO_ZEN4, True),
        (CPUINFO_ZEN2, False),
        (CPUINFO_CASCADE_LAKE, False),
    ],
)
def test_bf16_support_is_read_from_the_cpu_flags(fake_cpu, text, has_bf16):
    fake_cpu(text)
    assert cpu_has_bf16() is has_bf16
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, "auto") == ("bf16" if has_bf16 else "fp32")
    assert resolve_precision(cpu, "fp32") == "fp32"  # explicit requests are not changed
    assert resolve_precision(cpu, "bf16") == "bf16"


def test_cpu_flags_parsing_and_an_unreadable_cpuinfo(fake_cpu, monkeypatch, tmp_path):
    path = tmp_path / "two-cores"
    path.write_text(CPUINFO_ZEN2 + "\n" + CPUINFO_ZEN4)
    assert {"avx2", "avx512_bf16", "fma"} <= read_cpu_flags(path)
    assert read_cpu_flags(tmp_path / "missing") is None
    # no /proc/cpuinfo (macOS, Windows): torch's own probe decides, faked both ways here
    fake_cpu(None)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert not cpu_has_bf16()
    cpu_has_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cpu_has_bf16()


def test_bf16_without_cpu_support_is_honoured_with_a_warning(fake_cpu, caplog):
    fake_cpu(CPUINFO_ZEN2)
    device_mod._warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING", logger="liploc_ros.device"):
        assert resolve_precision(torch.device("cpu"), "bf16") == "bf16"
    assert "emulated and slower than fp32" in caplog.text


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


def test_cpu_precision_rules(fake_cpu):
    fake_cpu(CPUINFO_ZEN2)
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, "auto") == "fp32"
    assert resolve_precision(cpu, "fp32") == "fp32"
    assert resolve_precision(cpu, "bf16") == "bf16"  # only when asked for
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        resolve_precision(cpu, "fp16")


def test_autocast_on_cpu(fake_cpu):
    fake_cpu(CPUINFO_ZEN2)  # auto is fp32 on a CPU without bf16 units
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
    fake_cpu(CPUINFO_AMX)  # and bf16 on one with them
    with autocast("cpu", "auto") as chosen:
        assert chosen == "bf16"
        assert layer(x).dtype == torch.bfloat16


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
