"""The ONNX Runtime backend: the encoders exported to ONNX and run by onnxruntime.

ONNX Runtime is the portable choice (AMD and Arm CPUs, Windows, CUDA through
onnxruntime-gpu). Precision:

- CPU: ``fp32``, and ``int8``: the exported graph quantized by ONNX Runtime's static QDQ
  quantizer on the user's frames (:mod:`.quantize_onnx`), verified against fp32
  (:mod:`.int8`; a refused model falls back to fp32 with the figures). Its CPU provider has
  no fast bf16 kernels: bf16 is refused, naming the backends that do it.
- CUDA (``pip install onnxruntime-gpu``): ``fp32`` on the CUDA provider, ``fp16`` on the
  TensorRT provider where this onnxruntime has it (TensorRT builds an fp16 engine from the
  same file on first use, minutes, and keeps it in the cache folder).
- ``auto`` (this backend named explicitly): int8 on the CPU where a verified INT8 model is
  cached (or a calibration source is given), else fp32; fp16 on CUDA with TensorRT.

Sessions: the torch thread count (the node's ``threads``) for the intra-op pool, one
inter-op thread, all graph optimisations, and idle threads that sleep between frames
instead of spinning (the map builder's preprocessing threads and a node's ROS executor share
these cores). ViT encoders are offered to ORT's attention fusion (:mod:`.onnx_fusion`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.device import cpu_has_vnni, resolve_device
from liploc_ros.errors import BackendError, DeviceError, VerificationError
from liploc_ros.model.backends.base import INPUT_NAME, SIDES, EncoderRunner, Side, SidesRunner
from liploc_ros.model.backends.base import input_size as side_size
from liploc_ros.model.backends.cache import cache_folder, cached, graph_key
from liploc_ros.model.backends.calibration import CalibrationSet
from liploc_ros.model.backends.int8 import (
    Int8Recipe,
    build_int8,
    cached_int8,
    load_cached_int8,
    no_int8_message,
)
from liploc_ros.model.backends.metadata import FINGERPRINT
from liploc_ros.model.backends.onnx_export import MAX_BATCH, onnx_fingerprint
from liploc_ros.model.backends.onnx_fusion import FUSION_FILE, fuse_attention, fusion_line
from liploc_ros.model.backends.onnx_process import export_onnx_files
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

NAME = "onnxruntime"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"


def providers_available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The precisions this backend runs natively on ``device``, fastest first."""
    if device.type == "cpu":
        return ("int8", "fp32")
    have = providers_available()
    return (("fp16",) if TENSORRT_PROVIDER in have else ()) + (
        ("fp32",) if CUDA_PROVIDER in have else ()
    )


def resolve(device: str | torch.device, precision: str) -> tuple[torch.device, str]:
    """The device and precision ONNX Runtime runs with, or a DeviceError saying why not;
    ``auto`` is CUDA only where a GPU and this onnxruntime's CUDA provider are both there."""
    target = resolve_device(device)
    have = providers_available()
    if str(device).lower() == "auto" and target.type == "cuda" and CUDA_PROVIDER not in have:
        target = torch.device("cpu")
    if target.type == "cuda":
        if precision == "auto":
            return target, "fp16" if TENSORRT_PROVIDER in have else "fp32"
        if precision == "fp16" and TENSORRT_PROVIDER not in have:
            raise DeviceError(
                "fp16 with backend onnxruntime needs its TensorRT provider (onnxruntime-gpu "
                "with TensorRT's libraries); use fp32, or backend torch for fp16"
            )
        if precision not in ("fp16", "fp32"):
            raise DeviceError(
                f"the onnxruntime backend runs fp32 or fp16 on CUDA, not {precision}"
            )
        return target, precision
    if precision == "auto":
        return target, "fp32"
    if precision not in ("fp32", "int8"):
        raise DeviceError(
            f"the onnxruntime backend runs fp32 or int8 on the CPU, not {precision}; for bf16 "
            "use backend torch or openvino (on a CPU with bf16 units), for fp16 CUDA"
        )
    return target, precision


class OnnxRuntimeRunner:
    """onnxruntime sessions, one per encoder."""

    backend = NAME

    def __init__(
        self, sessions: Mapping[Side, Any], device: torch.device, precision: str, note: str = ""
    ) -> None:
        """``sessions``: an onnxruntime InferenceSession per side (onnxruntime is untyped)."""
        self._sessions = dict(sessions)
        self.device = device
        self.precision = precision
        self._note = note

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        if side not in self._sessions:
            raise BackendError(f"the {side} encoder was not loaded")
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (out,) = self._sessions[side].run(None, {INPUT_NAME: x})
        return np.asarray(out, np.float32)

    def describe(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} {self.precision} on {self.device}{self._note}"


def session_options() -> Any:
    """Explicit threads, all graph optimisations, no spinning between frames."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _providers(
    device: torch.device, precision: str, cache: Path, size: int
) -> list[str | tuple[str, dict[str, Any]]]:
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    have = providers_available()
    if CUDA_PROVIDER not in have:
        raise DeviceError(
            f"device {device} asked for with backend onnxruntime, but this onnxruntime has no "
            "CUDA provider (pip install onnxruntime-gpu instead of onnxruntime)"
        )
    cuda = (CUDA_PROVIDER, {"device_id": device.index or 0})
    if precision != "fp16":
        return [cuda, "CPUExecutionProvider"]
    shape = f"3x{size}x{size}"
    trt = {
        "device_id": device.index or 0,
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_profile_min_shapes": f"{INPUT_NAME}:1x{shape}",
        "trt_profile_opt_shapes": f"{INPUT_NAME}:1x{shape}",
        "trt_profile_max_shapes": f"{INPUT_NAME}:{min(MAX_BATCH, 64)}x{shape}",
    }
    return [(TENSORRT_PROVIDER, trt), cuda, "CPUExecutionProvider"]


def _session(
    path: Path, loaded: LoadedModel, side: Side, device: torch.device, precision: str
) -> Any:
    import onnxruntime as ort

    providers = _providers(device, precision, path.parent / "tensorrt", side_size(loaded, side))
    try:
        session = ort.InferenceSession(str(path), session_options(), providers=providers)
    except Exception as err:  # onnxruntime raises its own non-public exception types
        raise BackendError(f"onnxruntime cannot load {path}: {err}") from err
    found = session.get_modelmeta().custom_metadata_map.get(FINGERPRINT)
    if found != loaded.fingerprint:
        raise BackendError(f"{path} holds model {found}, not {loaded.fingerprint}")
    return session


def fp32_onnx(loaded: LoadedModel, side: Side, cache_dir: Path | None) -> Path:
    """The cache folder holding ``side``'s exported ONNX file (exported once), with the
    attention fusion's outcome in fusion.json."""
    folder = cache_folder(loaded, NAME, "fp32", cache_dir, side=side)

    def build(tmp: Path) -> None:
        plain = tmp / f"{side}.onnx"
        export_onnx_files(loaded, {side: plain})
        info = fuse_attention(loaded, side, plain, tmp / f"{side}.fused.onnx")
        (tmp / FUSION_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")

    def check(f: Path) -> Path:
        found = onnx_fingerprint(f / f"{side}.onnx")
        if found != loaded.fingerprint:
            raise BackendError(f"{f / side}.onnx holds model {found}, not {loaded.fingerprint}")
        return f

    return cached(folder, graph_key(loaded, NAME, "fp32", side=side), build, check)


def _fusion(folder: Path) -> dict[str, Any]:
    try:
        info = json.loads((folder / FUSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def float_runner(
    loaded: LoadedModel,
    device: torch.device,
    precision: str,
    sides: tuple[Side, ...],
    cache_dir: Path | None,
) -> OnnxRuntimeRunner:
    """fp32 (CPU, CUDA) or fp16 (TensorRT) encoders of ``sides``."""
    sessions, notes = {}, set()
    for side in sides:
        folder = fp32_onnx(loaded, side, cache_dir)
        fused = folder / f"{side}.fused.onnx"
        path = fused if fused.is_file() else folder / f"{side}.onnx"
        sessions[side] = _session(path, loaded, side, device, precision)
        notes.add(fusion_line(_fusion(folder)))
    return OnnxRuntimeRunner(sessions, device, precision, "".join(sorted(notes)))


def int8_recipe(loaded: LoadedModel, side: Side, cache_dir: Path | None) -> Int8Recipe:
    """How this backend quantizes and loads ``side``'s encoder on this CPU."""
    from liploc_ros.model.backends.quantize_onnx import onnx_int8_settings, quantize_onnx_file

    vnni = cpu_has_vnni()
    settings = onnx_int8_settings(vnni)

    def quantize(tmp: Path, model: LoadedModel, s: Side, inputs: Any) -> None:
        source = fp32_onnx(model, s, cache_dir) / f"{s}.onnx"  # the unfused graph
        quantize_onnx_file(source, tmp / f"{s}.onnx", inputs, settings)

    def load(folder: Path, model: LoadedModel, s: Side) -> EncoderRunner:
        session = _session(folder / f"{s}.onnx", model, s, torch.device("cpu"), "int8")
        return OnnxRuntimeRunner({s: session}, torch.device("cpu"), "int8")

    return Int8Recipe(NAME, quantize, load, settings, reduced_range=not vnni)


def has_cached_int8(loaded: LoadedModel, side: Side, cache_dir: Path | None) -> bool:
    """Whether a verified INT8 model of ``side`` is in the cache for this CPU class."""
    found = cached_int8(loaded, int8_recipe(loaded, side, cache_dir), side, cache_dir)
    return bool(found) and found[0][1].passed


def int8_runner(
    loaded: LoadedModel,
    sides: tuple[Side, ...],
    cache_dir: Path | None,
    calibration: CalibrationSet | None,
) -> EncoderRunner:
    """INT8 encoders of ``sides``; a side whose INT8 model was refused runs fp32."""
    runners: dict[Side, EncoderRunner] = {}
    cpu = torch.device("cpu")
    for side in sides:
        recipe = int8_recipe(loaded, side, cache_dir)
        try:
            if calibration is not None:
                model = build_int8(loaded, recipe, side, calibration, cache_dir)
            else:
                found = load_cached_int8(loaded, recipe, side, cache_dir)
                if found is None:
                    raise DeviceError(no_int8_message(loaded, NAME))
                model = found
            runners[side] = model.runner
        except VerificationError as err:
            log.warning("%s", err)
            runners[side] = float_runner(loaded, cpu, "fp32", (side,), cache_dir)
    return SidesRunner(runners) if len(runners) > 1 else next(iter(runners.values()))


def create(
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: Path | None = None,
    sides: tuple[Side, ...] = SIDES,
    calibration: CalibrationSet | None = None,
) -> EncoderRunner:
    """Export (once, cached) and load the encoders of ``sides`` into onnxruntime sessions."""
    target, chosen = resolve(device, precision)
    # refuse a missing CUDA provider before spending a minute exporting
    _providers(target, chosen, Path(), 1)
    if (
        target.type == "cpu"
        and precision == "auto"
        and (calibration is not None or all(has_cached_int8(loaded, s, cache_dir) for s in sides))
    ):
        chosen = "int8"
    if chosen == "int8":
        return int8_runner(loaded, sides, cache_dir, calibration)
    return float_runner(loaded, target, chosen, sides, cache_dir)
