"""``backend: auto``: the candidates it measures follow the CPU's flags, the GPU and what is
installed, as documented in auto_rule; the ranking prefers the higher precision on a tie; a
reduced precision is taken only once verified; the choice is kept and measured again when the
machine changes; small encoders stay in torch. No test here times anything: the measurement
is replaced by fixed figures."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from backend_helpers import AMX_CPUINFO, AVX2_CPUINFO, fake_cpuinfo, inputs, needs

from liploc_ros.device import cpu_has_bf16
from liploc_ros.model import Embedder
from liploc_ros.model.backends import auto, create_runner
from liploc_ros.model.backends.acceptance import Verification
from liploc_ros.model.backends.auto_rule import Offer, candidates, rank
from liploc_ros.model.backends.cache import model_cache_root

CPU_ALL = {"torch": ("bf16", "fp32"), "openvino": ("int8", "bf16", "fp32"),
           "onnxruntime": ("int8", "fp32")}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_cpu_probe():
    yield
    cpu_has_bf16.cache_clear()


# -- the rule, on offers written out ------------------------------------------------------
def test_a_cpu_with_bf16_units_gets_torch_and_openvino_at_bf16():
    offer = Offer("cpu", CPU_ALL)
    assert candidates(offer) == [("torch", "fp32"), ("torch", "bf16"), ("openvino", "bf16")]


def test_an_avx2_cpu_gets_openvino_fp32_and_no_bf16():
    offer = Offer("cpu", {"torch": ("fp32",), "openvino": ("int8", "fp32"),
                          "onnxruntime": ("int8", "fp32")})  # fmt: skip
    assert candidates(offer) == [("torch", "fp32"), ("openvino", "fp32")]


def test_onnxruntime_is_the_runtime_only_without_openvino():
    offer = Offer("cpu", {"torch": ("fp32",), "onnxruntime": ("int8", "fp32")})
    assert candidates(offer) == [("torch", "fp32"), ("onnxruntime", "fp32")]
    assert candidates(Offer("cpu", {"torch": ("fp32",)})) == [("torch", "fp32")]


def test_int8_is_a_candidate_only_where_a_verified_model_is_ready():
    offer = Offer("cpu", CPU_ALL, int8_ready=frozenset({"onnxruntime"}))
    assert ("onnxruntime", "int8") in candidates(offer)
    assert ("openvino", "int8") not in candidates(offer)
    both = Offer("cpu", CPU_ALL, int8_ready=frozenset({"openvino", "onnxruntime"}))
    assert candidates(both, precision="int8") == [("openvino", "int8"), ("onnxruntime", "int8")]


def test_explicit_backend_or_precision_restrict_the_candidates():
    offer = Offer("cpu", CPU_ALL, int8_ready=frozenset({"openvino"}))
    assert candidates(offer, backend="onnxruntime") == [("onnxruntime", "fp32")]
    assert candidates(offer, backend="openvino") == [
        ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]  # fmt: skip
    assert candidates(offer, precision="fp32") == [("torch", "fp32")]
    assert candidates(offer, backend="torch") == [("torch", "fp32"), ("torch", "bf16")]


def test_on_cuda_tensorrt_counts_only_once_its_engine_is_built():
    native = {"torch": ("fp16", "bf16", "fp32"), "onnxruntime": ("fp16", "fp32")}
    assert candidates(Offer("cuda", native)) == [
        ("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16")]  # fmt: skip
    built = Offer("cuda", native, prebuilt=frozenset({"onnxruntime:fp16"}))
    assert ("onnxruntime", "fp16") in candidates(built)


def test_ties_go_to_the_higher_precision_then_to_torch():
    measured = {("torch", "fp32"): 10.0, ("openvino", "bf16"): 9.7, ("openvino", "int8"): 9.6}
    assert rank(measured)[0] == ("torch", "fp32")  # all within 5 %
    measured = {("torch", "fp32"): 30.0, ("openvino", "bf16"): 10.2, ("openvino", "int8"): 10.0}
    assert rank(measured) == [("openvino", "bf16"), ("openvino", "int8"), ("torch", "fp32")]
    measured = {("torch", "fp32"): 30.0, ("openvino", "bf16"): 12.0, ("openvino", "int8"): 10.0}
    assert rank(measured)[0] == ("openvino", "int8")


# -- the offer, from faked CPU flags and installed runtimes --------------------------------
def _hide(monkeypatch, *packages):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in packages else real(name, *a))  # fmt: skip


@needs("openvino")
@pytest.mark.parametrize(
    ("cpuinfo", "ov_bf16", "hidden", "expected"),
    [
        (AMX_CPUINFO, True, (), [("torch", "fp32"), ("torch", "bf16"), ("openvino", "bf16")]),
        (AVX2_CPUINFO, False, (), [("torch", "fp32"), ("openvino", "fp32")]),
        (AVX2_CPUINFO, False, ("openvino",), [("torch", "fp32"), ("onnxruntime", "fp32")]),
        (AMX_CPUINFO, True, ("openvino", "onnxruntime"), [("torch", "fp32"), ("torch", "bf16")]),
    ],
)
def test_the_offer_follows_the_flags_and_what_is_installed(
    tiny_vit, monkeypatch, tmp_path, cpuinfo, ov_bf16, hidden, expected
):
    from liploc_ros.model.backends import openvino_backend

    fake_cpuinfo(monkeypatch, tmp_path, cpuinfo)
    monkeypatch.setattr(openvino_backend, "openvino_has_bf16", lambda: ov_bf16)
    _hide(monkeypatch, *hidden)
    offer = auto.offer(tiny_vit, torch.device("cpu"), "camera", tmp_path / "cache", None)
    assert candidates(offer) == expected
    # a calibration source makes the INT8 of every installed runtime a candidate
    with_data = auto.offer(tiny_vit, torch.device("cpu"), "camera", tmp_path, object())  # type: ignore[arg-type]
    runtimes = {"openvino", "onnxruntime"} - set(hidden)
    assert {b for b, p in candidates(with_data) if p == "int8"} == runtimes


# -- the runner: choose, verify, keep, measure again ----------------------------------------
def _verdict(passed: bool) -> Verification:
    return Verification("torch", "bf16", "camera", "s", 40, 0.9999 if passed else 0.5,
                        0.999, 0.5, 0.5 if passed else 0.1, 0.9, 0.99, 0.025, passed)  # fmt: skip


@pytest.fixture
def big(monkeypatch, tmp_path):
    """The tiny ViT treated as a large encoder, torch its only backend, measurements faked."""
    monkeypatch.setattr(auto, "SMALL_GFLOPS", 0.0)
    monkeypatch.setattr("liploc_ros.model.backends.available_backends", lambda: ["torch"])
    state = {"figures": {("torch", "fp32"): 10.0, ("torch", "bf16"): 5.0}, "calls": 0,
             "passed": True, "verified": 0}  # fmt: skip

    def fake_measure(runners, side, x):
        state["calls"] += 1
        return {c: state["figures"][c] for c in runners}

    def fake_verified(self, config, runner, side):
        state["verified"] += 1
        return _verdict(state["passed"])

    monkeypatch.setattr(auto, "measure", fake_measure)
    monkeypatch.setattr(auto.AutoRunner, "_verified", fake_verified)
    return state


def _runner(tiny_vit, tmp_path):
    return create_runner("auto", tiny_vit, device="cpu", cache_dir=tmp_path / "cache")


def test_auto_takes_the_fastest_verified_and_keeps_the_choice(
    tiny_vit, tmp_path, monkeypatch, big
):
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    runner = _runner(tiny_vit, tmp_path)
    assert isinstance(runner, auto.AutoRunner)
    assert runner.backend == "auto"  # nothing chosen before the first use
    out = runner.encode("camera", torch.from_numpy(inputs(2)))
    assert out.shape == (2, tiny_vit.embed_dim)
    decision = runner.decisions["camera"]
    assert (decision.backend, decision.precision, decision.cached) == ("torch", "bf16", False)
    assert decision.measured == {"torch fp32": 10.0, "torch bf16": 5.0}
    assert decision.verification["passed"]
    assert (runner.backend, runner.precision) == ("torch", "bf16")
    assert "camera encoder: torch bf16, 5.00 ms/frame" in runner.describe()
    assert "lidar" not in runner.decisions  # the LiDAR encoder was never used
    kept = list((model_cache_root(tiny_vit, tmp_path / "cache") / "auto").glob("*.json"))
    assert [p.name for p in kept] == ["cpu-camera-b1-auto-auto.json"]
    assert json.loads(kept[0].read_text())["decision"]["precision"] == "bf16"
    # a second start reads the choice: nothing measured or verified again
    calls, verified = big["calls"], big["verified"]
    again = _runner(tiny_vit, tmp_path)
    again.encode("camera", torch.from_numpy(inputs(1)))
    assert again.decisions["camera"].cached
    assert (big["calls"], big["verified"]) == (calls, verified)
    # another machine (no bf16 units): other candidates, measured again
    fake_cpuinfo(monkeypatch, tmp_path, AVX2_CPUINFO)
    other = _runner(tiny_vit, tmp_path)
    other.encode("camera", torch.from_numpy(inputs(1)))
    assert big["calls"] == calls + 1
    assert (other.decisions["camera"].backend, other.decisions["camera"].precision) == (
        "torch", "fp32")  # fmt: skip


def test_a_refused_precision_is_skipped_with_its_figures(tiny_vit, tmp_path, monkeypatch, big):
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    big["passed"] = False
    runner = _runner(tiny_vit, tmp_path)
    runner.encode("lidar", torch.from_numpy(inputs(1)))
    decision = runner.decisions["lidar"]
    assert (decision.backend, decision.precision) == ("torch", "fp32")
    assert any("torch bf16 refused" in note and "REFUSED" in note for note in decision.notes)


def test_a_tie_keeps_fp32_without_verifying(tiny_vit, tmp_path, monkeypatch, big):
    fake_cpuinfo(monkeypatch, tmp_path, AMX_CPUINFO)
    big["figures"] = {("torch", "fp32"): 10.0, ("torch", "bf16"): 9.8}
    runner = _runner(tiny_vit, tmp_path)
    runner.encode("camera", torch.from_numpy(inputs(1)))
    assert runner.decisions["camera"].precision == "fp32"
    assert big["verified"] == 0


@pytest.mark.parametrize("cpuinfo", [AVX2_CPUINFO, AMX_CPUINFO], ids=["avx2", "amx"])
def test_small_encoders_stay_in_torch_fp32_without_measuring(
    tiny_vit, monkeypatch, tmp_path, cpuinfo
):
    """Also on a CPU with bf16 units: at this size bf16 is no faster (bench_backends)."""
    monkeypatch.setattr(auto, "measure", lambda *a: pytest.fail("a small encoder was measured"))
    fake_cpuinfo(monkeypatch, tmp_path, cpuinfo)
    embedder = Embedder(tiny_vit, device="cpu", cache_dir=tmp_path)  # backend auto (default)
    assert (embedder.backend, embedder.precision) == ("torch", "fp32")
    assert "auto: small encoders" in embedder.describe()
    x = inputs(3)
    reference = Embedder(tiny_vit, device="cpu", backend="torch", precision="fp32")
    np.testing.assert_allclose(embedder.embed_camera(x), reference.embed_camera(x), atol=1e-6)
    assert not (tmp_path / f"tiny-{tiny_vit.fingerprint}").exists()  # nothing written
