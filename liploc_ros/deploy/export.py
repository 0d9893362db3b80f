"""``export_model``: both encoders written for another runtime, with a manifest.

An export folder holds ``camera.<ext>`` and ``lidar.<ext>`` (ONNX files, OpenVINO .xml +
.bin pairs, or TensorRT .plan engines) and ``liploc_export.json``: the model's fingerprint,
its configs (how to preprocess the inputs), the tensor names and shapes, the precision (and
for INT8 / bf16 the calibration and the verification figures, see :mod:`.reduced_export`),
and for ONNX the ``trtexec`` command that builds TensorRT engines from it. Each encoder file
carries the fingerprint itself as well (ONNX, OpenVINO), and :func:`read_export` checks the
two agree, so an export moved away from its manifest still tells which maps it belongs to
(``MapDatabase.check_model``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from liploc_ros import __version__
from liploc_ros.config import to_dict
from liploc_ros.deploy.reduced_export import check_precision, export_int8, verify_bf16
from liploc_ros.errors import BackendError, CheckpointError, ConfigError, VerificationError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.model.backends import require_packages
from liploc_ros.model.backends.base import INPUT_NAME, OUTPUT_NAME, SIDES, input_size
from liploc_ros.model.backends.calibration import CalibrationSet
from liploc_ros.model.liploc_file import LoadedModel

EXPORT_FORMATS: tuple[str, ...] = ("onnx", "openvino", "tensorrt")
EXPORT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
MANIFEST = "liploc_export.json"
#: format -> (packages the exporter needs, the pip extra, encoder file suffixes)
_NEEDS = {
    "onnx": (("onnx", "onnxscript"), "onnx", (".onnx",)),
    "openvino": (("openvino",), "openvino", (".xml", ".bin")),
    "tensorrt": (("onnx", "onnxscript", "tensorrt"), "onnx", (".plan", ".plan.json")),
}


def _trtexec(loaded: LoadedModel, side: str, max_batch: int) -> str:
    size = input_size(loaded, side)  # type: ignore[arg-type]
    shape = f"3x{size}x{size}"
    return (
        f"trtexec --onnx={side}.onnx --minShapes={INPUT_NAME}:1x{shape} "
        f"--optShapes={INPUT_NAME}:1x{shape} --maxShapes={INPUT_NAME}:{max_batch}x{shape} "
        f"--fp16 --saveEngine={side}.plan"
    )


def _manifest(
    loaded: LoadedModel, fmt: str, max_batch: int, precision: str, extra: dict[str, Any]
) -> dict[str, Any]:
    encoders: dict[str, Any] = {}
    for side in SIDES:
        size = input_size(loaded, side)
        entry: dict[str, Any] = {
            "file": f"{side}{_NEEDS[fmt][2][0]}",
            "input": {"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32"},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", loaded.embed_dim]},
        }
        if fmt == "onnx" and precision == "fp32":
            entry["trtexec"] = _trtexec(loaded, side, max_batch)
        encoders[side] = entry
    return {
        "format": fmt,
        "precision": precision,
        **extra,
        "fingerprint": loaded.fingerprint,
        "sha256": loaded.sha256,
        "model_name": loaded.model_config.name,
        "model_config": to_dict(loaded.model_config),
        "preprocess_config": to_dict(loaded.preprocess),
        "embed_dim": loaded.embed_dim,
        "normalized": loaded.normalize,
        "encoders": encoders,
        "liploc_ros_version": __version__,
        "torch_version": torch.__version__,
    }


def _write_encoders(
    loaded: LoadedModel,
    fmt: str,
    precision: str,
    calibration: CalibrationSet | None,
    tmp: Path,
    max_batch: int,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """Both encoder files in ``tmp``; returns the manifest's additions."""
    if precision == "int8":
        assert calibration is not None
        return export_int8(loaded, fmt, calibration, tmp, cache_dir)
    if fmt == "onnx":
        from liploc_ros.model.backends.onnx_process import export_onnx_files

        export_onnx_files(loaded, {side: tmp / f"{side}.onnx" for side in SIDES})
        return {}
    if fmt == "tensorrt":
        from liploc_ros.deploy.tensorrt_export import build_engines

        return build_engines(loaded, tmp, precision, max_batch)
    from liploc_ros.model.backends.openvino_export import export_openvino

    additions: dict[str, Any] = {}
    if precision == "bf16":
        checks = verify_bf16(loaded, calibration, cache_dir)
        refused = [v.summary() for v in checks.values() if not v.passed]
        if refused:
            raise VerificationError("bf16 refused: " + "; ".join(refused))
        additions = {
            "compile": {"INFERENCE_PRECISION_HINT": "bf16"},
            "verification": {s: v.to_dict() for s, v in checks.items()},
        }
    for side in SIDES:
        export_openvino(loaded, side, tmp / f"{side}.xml")
    return additions


def export_model(
    loaded: LoadedModel,
    out_dir: str | Path,
    fmt: str,
    *,
    max_batch: int = 32,
    precision: str = "fp32",
    calibration: CalibrationSet | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Write ``loaded``'s two encoders in ``fmt`` ("onnx", "openvino" or "tensorrt") at
    ``precision`` to ``out_dir``; returns the manifest. INT8 needs ``calibration`` (the
    frames to quantize on and verify with); bf16 is verified on it, or on the default
    verification set. Files are built in a temporary folder and moved in, manifest last, so
    a failed or refused export leaves no manifest describing half-written files."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use {' or '.join(EXPORT_FORMATS)}")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be positive, got {max_batch}")
    check_precision(fmt, precision)
    if precision == "int8" and calibration is None:
        raise ConfigError(
            "an INT8 export needs calibration frames: --calibration SOURCE (the map's drive, "
            "e.g. bag:PATH, kitti:ROOT:SEQ, synthetic:SEED:TRAVERSAL:FRAMES)"
        )
    packages, extra, suffixes = _NEEDS[fmt]
    require_packages(f"export to {fmt}", packages, extra)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as err:
        raise BackendError(f"cannot create the export folder {out}: {err}") from err
    try:
        additions = _write_encoders(loaded, fmt, precision, calibration, tmp, max_batch,
                                    cache_dir)  # fmt: skip
        with_manifest = out / MANIFEST
        if with_manifest.exists():
            with_manifest.unlink()  # the old manifest must not describe the new files
        for side in SIDES:
            for suffix in suffixes:
                os.replace(tmp / f"{side}{suffix}", out / f"{side}{suffix}")
        manifest = _manifest(loaded, fmt, max_batch, precision, additions)
        write_text_atomic(with_manifest, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    except OSError as err:
        raise BackendError(f"cannot write the export to {out}: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _embedded_fingerprint(path: Path, fmt: str) -> str | None:
    if fmt == "tensorrt":
        from liploc_ros.deploy.tensorrt_export import engine_fingerprint

        return engine_fingerprint(path)
    if fmt == "onnx":
        from liploc_ros.model.backends.onnx_export import onnx_fingerprint

        return onnx_fingerprint(path)
    import openvino as ov

    from liploc_ros.model.backends.openvino_export import openvino_fingerprint

    try:
        return openvino_fingerprint(ov.Core().read_model(str(path)))
    except RuntimeError as err:
        raise BackendError(f"{path} is not a readable OpenVINO IR: {err}") from err


def read_export(path: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, after checking that each encoder file exists and
    carries the manifest's fingerprint (CheckpointError otherwise)."""
    folder = Path(path)
    manifest_path = folder / MANIFEST if folder.is_dir() else folder
    folder = manifest_path.parent
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        fmt, fingerprint = manifest["format"], manifest["fingerprint"]
        files = {side: folder / manifest["encoders"][side]["file"] for side in SIDES}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{manifest_path} is not a liploc export manifest: {err}") from err
    if fmt not in EXPORT_FORMATS:
        raise CheckpointError(f"{manifest_path}: unknown export format {fmt!r}")
    packages, extra, _ = _NEEDS[fmt]
    if fmt != "tensorrt":  # an engine's fingerprint is read from its sidecar file
        require_packages(f"reading a {fmt} export", packages[:1], extra)
    for side, file in files.items():
        if not file.is_file():
            raise CheckpointError(f"export {folder}: the {side} encoder {file.name} is missing")
        found = _embedded_fingerprint(file, fmt)
        if found != fingerprint:
            raise CheckpointError(
                f"export {folder}: {file.name} was made by model {found}, but the manifest "
                f"says {fingerprint}"
            )
    return manifest
