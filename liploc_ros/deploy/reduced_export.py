"""Exports below fp32: INT8 (OpenVINO IR quantized by NNCF, or QDQ ONNX) and bf16 (OpenVINO).

An INT8 export *is* the backends' cached INT8 model (:mod:`liploc_ros.model.backends.int8`):
it is built (or found) in the model's cache, keyed by fingerprint, precision and calibration,
verified on the calibration source's held-out frames, and its files are copied into the
export folder. So ``liploc export --precision int8`` also leaves the model where the
backends (and ``auto``) find it. A refused encoder stops the export with its figures
(VerificationError); nothing is written.

A bf16 export is the fp32 IR (OpenVINO applies bf16 when it compiles, with
``INFERENCE_PRECISION_HINT bf16``), verified the same way at bf16 before it is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from liploc_ros.errors import ConfigError, DeviceError
from liploc_ros.model.backends.acceptance import Verification, verify_runner
from liploc_ros.model.backends.base import SIDES
from liploc_ros.model.backends.cache import model_cache_root
from liploc_ros.model.backends.calibration import CalibrationSet, default_verification_set
from liploc_ros.model.backends.int8 import REFERENCE_FOLDER, build_int8
from liploc_ros.model.liploc_file import LoadedModel

#: export format -> the backend whose INT8 it ships
INT8_BACKENDS = {"openvino": "openvino", "onnx": "onnxruntime"}
#: export format -> encoder file suffixes
SUFFIXES = {"onnx": (".onnx",), "openvino": (".xml", ".bin")}


def check_precision(fmt: str, precision: str) -> None:
    """A ConfigError for a format and precision that do not go together."""
    allowed = {
        "onnx": ("fp32", "int8"),
        "openvino": ("fp32", "bf16", "int8"),
        "tensorrt": ("fp32", "fp16"),
    }
    if fmt in allowed and precision not in allowed[fmt]:
        hint = " (ONNX Runtime's CPU kernels have no bf16: use --format openvino)"
        raise ConfigError(
            f"--format {fmt} exports {' or '.join(allowed[fmt])}, not {precision}"
            + (hint if precision == "bf16" else "")
        )


def export_int8(
    loaded: LoadedModel,
    fmt: str,
    calibration: CalibrationSet,
    into: Path,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Build (or find) both INT8 encoders and copy their files into ``into``; returns the
    manifest's additions (calibration, quantizer settings, verifications)."""
    import importlib

    from liploc_ros.model.backends import BACKENDS, require_backend

    backend = INT8_BACKENDS[fmt]
    require_backend(backend)
    module = importlib.import_module(BACKENDS[backend].module)
    verifications, settings = {}, {}
    for side in SIDES:
        recipe = module.int8_recipe(loaded, side, cache_dir)
        model = build_int8(loaded, recipe, side, calibration, cache_dir)
        for suffix in SUFFIXES[fmt]:
            shutil.copy2(model.folder / f"{side}{suffix}", into / f"{side}{suffix}")
        verifications[side] = model.verification.to_dict()
        settings[side] = recipe.settings
    return {
        "calibration": calibration.describe(),
        "quantizer": settings,
        "verification": verifications,
        "runtime": backend,
    }


def verify_bf16(
    loaded: LoadedModel, calibration: CalibrationSet | None, cache_dir: Path | None = None
) -> dict[str, Verification]:
    """Both encoders checked at OpenVINO bf16 (on ``calibration``'s held-out frames, or the
    default verification set); DeviceError on a CPU OpenVINO runs no bf16 on."""
    from liploc_ros.model.backends import create_runner

    vset = calibration or default_verification_set()
    runner = create_runner("openvino", loaded, device="cpu", precision="bf16", cache_dir=cache_dir)
    if runner.precision != "bf16":
        raise DeviceError(f"OpenVINO ran {runner.precision}, not bf16, on this CPU")
    references = model_cache_root(loaded, cache_dir) / REFERENCE_FOLDER
    return {side: verify_runner(runner, side, loaded, vset, references) for side in SIDES}
