"""The OpenVINO backend: the encoders converted to OpenVINO IR and compiled for the CPU.

Precision:

- ``fp32`` / ``bf16``: the same fp32 IR, compiled with that INFERENCE_PRECISION_HINT.
  ``bf16`` lets OpenVINO run the matrix products on AMX / AVX512-BF16 units (it keeps what
  it deems sensitive, such as the normalisations' reductions, in fp32 by itself); ``fp32``
  forces f32, which OpenVINO would otherwise not do on such a CPU. OpenVINO quietly runs
  f32 when bf16 is asked of a CPU without it; this backend checks the compiled precision and
  refuses instead, so that no one benchmarks f32 believing it bf16.
- ``int8``: the IR quantized by NNCF on the user's frames (:mod:`.quantize_openvino`) and
  verified against fp32 (:mod:`.int8`); the layers NNCF leaves in float run in bf16 where
  the CPU has bf16 units, else f32. A refused INT8 encoder falls back to fp32 with a
  warning giving the figures.
- ``auto`` (this backend named explicitly): int8 where a verified INT8 model is cached (or a
  calibration source is given), else bf16 where both the CPU flags and OpenVINO report bf16
  support, else fp32.

Compiled with the latency hint, one stream, the torch thread count (the node's ``threads``)
and OpenVINO's model cache (the compiled blob beside the IR: a second start compiles in
well under a second).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.device import cpu_has_bf16, cpu_has_vnni, resolve_device
from liploc_ros.errors import BackendError, DeviceError, VerificationError
from liploc_ros.model.backends.base import SIDES, EncoderRunner, Side, SidesRunner
from liploc_ros.model.backends.cache import cache_folder, cached, graph_key
from liploc_ros.model.backends.calibration import CalibrationSet
from liploc_ros.model.backends.int8 import (
    Int8Recipe,
    build_int8,
    cached_int8,
    load_cached_int8,
    no_int8_message,
)
from liploc_ros.model.backends.openvino_export import export_openvino, openvino_fingerprint
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

NAME = "openvino"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports bf16 support on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The precisions this backend runs natively on ``device``, fastest first."""
    if device.type != "cpu":
        return ()
    bf16 = ("bf16",) if cpu_has_bf16() and openvino_has_bf16() else ()
    return ("int8", *bf16, "fp32")


def resolve(device: str | torch.device, precision: str) -> tuple[torch.device, str]:
    """The device (CPU) and precision OpenVINO runs with, or a DeviceError saying why not;
    ``auto`` here is bf16 or fp32 (whether INT8 is there is decided in :func:`create`)."""
    target = torch.device("cpu") if str(device).lower() == "auto" else resolve_device(device)
    if target.type != "cpu":
        raise DeviceError(
            f"the openvino backend runs on the CPU, not {target}; on an NVIDIA GPU use backend "
            "torch (fp16) or export to ONNX for TensorRT (liploc export)"
        )
    if precision == "auto":
        return target, "bf16" if cpu_has_bf16() and openvino_has_bf16() else "fp32"
    if precision not in (*_HINTS, "int8"):
        raise DeviceError(
            f"the openvino backend runs fp32, bf16 or int8 on the CPU, not {precision}"
        )
    if precision == "bf16" and not openvino_has_bf16():
        raise DeviceError(
            "bf16 asked for with backend openvino, but OpenVINO reports no bf16 support on "
            "this CPU (it would run f32); use precision fp32 or auto"
        )
    return target, precision


class OpenVinoRunner:
    """Compiled encoders, one infer request each, used under a lock."""

    backend = NAME

    def __init__(self, compiled: Mapping[Side, Any], precision: str) -> None:
        """``compiled``: an openvino CompiledModel per side (openvino is untyped here)."""
        self._requests = {s: c.create_infer_request() for s, c in compiled.items()}
        self._lock = threading.Lock()
        self.device = torch.device("cpu")
        self.precision = precision

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        if side not in self._requests:
            raise BackendError(f"the {side} encoder was not loaded")
        with self._lock:
            result = self._requests[side].infer([x])
            return np.array(result[0], np.float32)  # a copy: the request reuses its buffer

    def describe(self) -> str:
        import openvino as ov

        return f"openvino {ov.get_version()} {self.precision} on cpu"


def compile_config(hint: str, cache: Path) -> dict[str, str]:
    """The CPU plugin's settings: latency hint, one stream, torch's threads, model cache."""
    return {
        "INFERENCE_PRECISION_HINT": hint,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
        "CACHE_DIR": str(cache),
    }


def _compile(folder: Path, loaded: LoadedModel, side: Side, hint: str) -> Any:
    import openvino as ov

    core = ov.Core()
    path = folder / f"{side}.xml"
    try:
        model = core.read_model(str(path))
    except RuntimeError as err:
        raise BackendError(f"openvino cannot read {path}: {err}") from err
    found = openvino_fingerprint(model)
    if found != loaded.fingerprint:
        raise BackendError(f"{path} holds model {found}, not {loaded.fingerprint}")
    try:
        # one model cache per precision hint: with one shared folder, OpenVINO 2026.4 gave
        # NaN from a bf16 compile that followed an f32 one of the same IR
        cache = folder / f"compiled-{hint}"
        compiled = core.compile_model(model, "CPU", compile_config(hint, cache))
    except RuntimeError as err:
        raise BackendError(f"openvino cannot compile {path}: {err}") from err
    actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if actual != hint:
        raise DeviceError(f"openvino compiled {path} for {actual}, not {hint}")
    return compiled


def fp32_ir(loaded: LoadedModel, side: Side, cache_dir: Path | None) -> Path:
    """The cache folder holding ``side``'s fp32 IR (converted once)."""
    folder = cache_folder(loaded, NAME, "fp32", cache_dir, side=side)

    def build(tmp: Path) -> None:
        export_openvino(loaded, side, tmp / f"{side}.xml")

    def check(f: Path) -> Path:
        import openvino as ov

        found = openvino_fingerprint(ov.Core().read_model(str(f / f"{side}.xml")))
        if found != loaded.fingerprint:
            raise BackendError(f"{f} holds model {found}, not {loaded.fingerprint}")
        return f

    return cached(folder, graph_key(loaded, NAME, "fp32", side=side), build, check)


def float_runner(
    loaded: LoadedModel, precision: str, sides: tuple[Side, ...], cache_dir: Path | None
) -> OpenVinoRunner:
    """fp32 or bf16 encoders of ``sides``."""
    compiled = {s: _compile(fp32_ir(loaded, s, cache_dir), loaded, s, _HINTS[precision])
                for s in sides}  # fmt: skip
    return OpenVinoRunner(compiled, precision)


def int8_recipe(loaded: LoadedModel, side: Side, cache_dir: Path | None) -> Int8Recipe:
    """How this backend quantizes and loads ``side``'s encoder on this CPU."""
    from liploc_ros.model.backends.quantize_openvino import openvino_int8_settings, quantize_ir

    vnni = cpu_has_vnni()

    def quantize(tmp: Path, model: LoadedModel, s: Side, inputs: Any) -> None:
        quantize_ir(fp32_ir(model, s, cache_dir) / f"{s}.xml", tmp / f"{s}.xml", inputs,
                    settings)  # fmt: skip

    def load(folder: Path, model: LoadedModel, s: Side) -> EncoderRunner:
        hint = "bf16" if cpu_has_bf16() and openvino_has_bf16() else "f32"
        return OpenVinoRunner({s: _compile(folder, model, s, hint)}, "int8")

    settings = openvino_int8_settings(loaded, side, vnni)
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
            runners[side] = float_runner(loaded, "fp32", (side,), cache_dir)
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
    """Convert (once, cached) and compile the encoders of ``sides``."""
    _, chosen = resolve(device, precision)
    if precision == "auto" and (
        calibration is not None or all(has_cached_int8(loaded, s, cache_dir) for s in sides)
    ):
        chosen = "int8"
    if chosen == "int8":
        return int8_runner(loaded, sides, cache_dir, calibration)
    return float_runner(loaded, chosen, sides, cache_dir)
