"""INT8 encoders: the export quantizes the demo model and verifies it; a model calibrated on
blank frames is refused with its figures and the fp32 path runs instead; the cache builds a
new INT8 model when the model, the quantizer settings or the calibration change, and never
again for the same ones (a refusal included)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_helpers import min_cosine, needs, save_tiny_vit

from liploc_ros.cli import main
from liploc_ros.datasets.base import Frame, IndexedSource
from liploc_ros.errors import ConfigError, DeviceError, VerificationError
from liploc_ros.model import Embedder, load_model
from liploc_ros.model.backends import create_runner
from liploc_ros.model.backends.calibration import CalibrationConfig, CalibrationSet
from liploc_ros.model.backends.int8 import Int8Recipe, build_int8, cached_int8, int8_folder
from liploc_ros.model.backends.torch_backend import TorchRunner
from liploc_ros.paths import models_dir

SMALL = CalibrationConfig(frames=40, held_out=40)


class Blank(IndexedSource):
    """A drive of black pictures and one flat wall: what a broken calibration sees."""

    name = "blank"

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        wall = np.zeros((1000, 4), np.float32)
        wall[:, 0], wall[:, 1] = 5.0, np.linspace(-2, 2, 1000)
        return Frame(index, float(index), np.zeros((64, 64, 3), np.uint8) if image else None,
                     wall if points else None, np.eye(4))  # fmt: skip

    @property
    def stamps(self) -> np.ndarray:
        return np.arange(self.count, dtype=np.float64)

    @property
    def poses(self) -> np.ndarray:
        return np.repeat(np.eye(4)[None], self.count, axis=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The shipped demo model, copied so that its cache folder is the test's own."""
    folder = tmp_path_factory.mktemp("demo")
    shutil.copy(models_dir() / "liploc_demo.safetensors", folder / "demo.safetensors")
    return folder / "demo.safetensors"


@pytest.mark.slow
@needs("openvino")
def test_the_int8_export_quantizes_verifies_and_fills_the_cache(demo, tmp_path, capsys):
    out = tmp_path / "int8"
    args = ["export", str(demo), "--format", "openvino", "--precision", "int8", "--out",
            str(out), "--calibration", "synthetic:7:0:160", "--calibration-frames", "60",
            "--held-out", "40"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "as openvino int8" in printed
    assert printed.count("verified, ") == 2
    manifest = json.loads((out / "liploc_export.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["calibration"]["source"] == "synthetic:7:0:160"
    assert manifest["calibration"]["held_out_frames"] == 40
    for side in ("camera", "lidar"):
        result = manifest["verification"][side]
        assert result["passed"]
        assert result["cosine_mean"] >= 0.98
        assert result["recall"] >= result["recall_fp32"] - result["allowed_drop"]
        assert manifest["quantizer"][side]["tool"] == "nncf"
        assert sorted(p.name for p in out.glob(f"{side}.*")) == [f"{side}.bin", f"{side}.xml"]
    # the backends find it in the cache without calibration frames, and run it in INT8
    loaded = load_model(demo)
    embedder = Embedder(loaded, device="cpu", backend="openvino", precision="int8")
    assert embedder.precision == "int8"
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32) * 0.5
    fp32 = Embedder(loaded, device="cpu", backend="torch", precision="fp32")
    assert min_cosine(embedder.embed_camera(x), fp32.embed_camera(x)) > 0.95
    # model-info lists it, with its figures
    assert main(["model-info", str(demo)]) == 0
    assert "int8 model:     openvino camera encoder, calibrated on synthetic:7:0:160" in (
        capsys.readouterr().out
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("openvino", marks=needs("openvino")),
        pytest.param("onnxruntime", marks=needs("onnxruntime")),
    ],
)
def test_an_int8_model_calibrated_on_blank_frames_is_refused(demo, tmp_path, caplog, backend):
    """Black pictures teach the camera encoder's quantizers nothing about real frames."""
    loaded = load_model(demo)
    calibration = CalibrationSet(Blank(30), SMALL, held_out_source="synthetic:3:0:160")
    with caplog.at_level(logging.WARNING):
        runner = create_runner(
            backend, loaded, device="cpu", precision="int8", sides=("camera",),
            calibration=calibration, cache_dir=tmp_path,
        )  # fmt: skip
    # refused with its figures, and the fp32 path runs instead
    assert (runner.backend, runner.precision) == (backend, "fp32")
    assert "refused, falling back to fp32" in caplog.text
    assert "camera encoder" in caplog.text
    assert "REFUSED on 40 held-out frames of synthetic:3:0:160" in caplog.text
    assert "cosine to fp32 mean" in caplog.text
    # the refusal is what was cached: not quantized again, refused again
    module = __import__(f"liploc_ros.model.backends.{backend}_backend", fromlist=["x"])
    recipe = module.int8_recipe(loaded, "camera", tmp_path)
    folder = int8_folder(loaded, recipe, "camera", calibration.id, tmp_path)
    stamp = (folder / "verification.json").stat().st_mtime_ns
    with pytest.raises(VerificationError, match=r"REFUSED.*cosine to fp32 mean"):
        build_int8(loaded, recipe, "camera", calibration, tmp_path)
    assert (folder / "verification.json").stat().st_mtime_ns == stamp
    # and auto does not count it: no verified INT8 model is ready
    assert not module.has_cached_int8(loaded, "camera", tmp_path)


@needs("openvino")
def test_int8_without_a_cached_model_or_calibration_says_how_to_make_one(tiny_vit, tmp_path):
    for backend in ("openvino", "auto"):
        with pytest.raises(DeviceError, match="liploc export MODEL --precision int8 --calib"):
            Embedder(tiny_vit, device="cpu", backend=backend, precision="int8", cache_dir=tmp_path)
    from liploc_ros.deploy.export import export_model

    with pytest.raises(ConfigError, match="needs calibration frames"):
        export_model(tiny_vit, tmp_path / "out", "openvino", precision="int8")
    with pytest.raises(ConfigError, match="no bf16"):
        export_model(tiny_vit, tmp_path / "out", "onnx", precision="bf16")


# -- the cache key, with a recipe that counts its calls (no quantizer needed) -------------
class CountingRecipe:
    """An Int8Recipe whose "quantized" model is torch fp32, so that it always verifies."""

    def __init__(self, settings: dict | None = None, reduced_range: bool = False) -> None:
        self.builds = 0
        self.recipe = Int8Recipe("fake", self.quantize, self.load, settings or {"v": 1},
                                 reduced_range=reduced_range)  # fmt: skip

    def quantize(self, folder: Path, loaded, side, inputs) -> None:
        self.builds += 1
        (folder / f"{side}.bin").write_bytes(np.asarray(inputs).mean().tobytes())

    def load(self, folder: Path, loaded, side) -> TorchRunner:
        return TorchRunner(loaded, torch.device("cpu"), "fp32", (side,))


def test_the_int8_cache_is_rebuilt_when_model_settings_or_calibration_change(tmp_path):
    model = save_tiny_vit(tmp_path / "m" / "a.safetensors", seed=0)
    other = save_tiny_vit(tmp_path / "m" / "b.safetensors", seed=1)
    root = tmp_path / "cache"
    config = CalibrationConfig(frames=4, held_out=6)
    first = CalibrationSet("synthetic:5:0:12", config)
    counter = CountingRecipe()
    built = build_int8(model, counter.recipe, "camera", first, root)
    assert built.verification.passed
    assert counter.builds == 1
    # the same model, settings and calibration: read back, not quantized again
    build_int8(model, counter.recipe, "camera", CalibrationSet("synthetic:5:0:12", config), root)
    assert counter.builds == 1
    assert [f for f, _ in cached_int8(model, counter.recipe, "camera", root)] == [built.folder]
    # another calibration (another drive, or the same drive cut differently): a new model
    for calibration in (CalibrationSet("synthetic:6:0:12", config),
                        CalibrationSet("synthetic:5:0:12", CalibrationConfig(4, 7))):  # fmt: skip
        again = build_int8(model, counter.recipe, "camera", calibration, root)
        assert again.folder != built.folder
    assert counter.builds == 3
    assert len(cached_int8(model, counter.recipe, "camera", root)) == 3
    # other weights: another folder and key
    build_int8(other, counter.recipe, "camera", first, root)
    assert counter.builds == 4
    # other quantizer settings (a new NNCF version, another overflow fix): rebuilt in place
    newer = CountingRecipe({"v": 2})
    build_int8(model, newer.recipe, "camera", first, root)
    assert newer.builds == 1
    still = [f for f, _ in cached_int8(model, counter.recipe, "camera", root)]
    assert built.folder not in still  # rebuilt for the new settings: the old key is gone
    assert len(still) == 2
    # the 7-bit build of a CPU without VNNI is kept apart from the 8-bit one
    seven = CountingRecipe({"v": 2}, reduced_range=True)
    folder = build_int8(model, seven.recipe, "camera", first, root).folder
    assert folder.parent.name.endswith("-r7")
    assert seven.builds == 1
