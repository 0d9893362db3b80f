"""The OpenVINO backend: the encoders converted to OpenVINO IR and compiled for the CPU.

Precision is a compile-time hint: ``bf16`` lets OpenVINO run the matrix products on AMX /
AVX512-BF16 units (it keeps what it deems sensitive, such as the normalisations' reductions,
in fp32 by itself); ``fp32`` forces f32, which OpenVINO would otherwise not do on such a
CPU. ``auto`` is bf16 where both the CPU flags and OpenVINO report bf16 support. OpenVINO
quietly runs f32 when bf16 is asked of a CPU without it; this backend checks the compiled
precision and refuses instead, so that no one benchmarks f32 believing it bf16.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.deploy.openvino_export import export_openvino, openvino_fingerprint
from liploc_ros.device import cpu_has_bf16, resolve_device
from liploc_ros.errors import BackendError, DeviceError
from liploc_ros.model.backends.base import SIDES, Side
from liploc_ros.model.backends.cache import cache_folder, cached, graph_key
from liploc_ros.model.liploc_file import LoadedModel

NAME = "openvino"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports bf16 support on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve(device: str | torch.device, precision: str) -> tuple[torch.device, str]:
    """The device (CPU) and precision OpenVINO runs with, or a DeviceError saying why not."""
    target = torch.device("cpu") if str(device).lower() == "auto" else resolve_device(device)
    if target.type != "cpu":
        raise DeviceError(
            f"the openvino backend runs on the CPU, not {target}; on an NVIDIA GPU use backend "
            "torch (fp16) or export to ONNX for TensorRT (liploc export)"
        )
    if precision == "auto":
        return target, "bf16" if cpu_has_bf16() and openvino_has_bf16() else "fp32"
    if precision not in _HINTS:
        raise DeviceError(f"the openvino backend runs fp32 or bf16 on the CPU, not {precision}")
    if precision == "bf16" and not openvino_has_bf16():
        raise DeviceError(
            "bf16 asked for with backend openvino, but OpenVINO reports no bf16 support on "
            "this CPU (it would run f32); use precision fp32 or auto"
        )
    return target, precision


class OpenVinoRunner:
    """Two compiled models, one per encoder; one infer request each, used under a lock."""

    backend = NAME

    def __init__(self, compiled: dict[str, Any], precision: str) -> None:
        """``compiled``: an openvino CompiledModel per side (openvino is untyped here)."""
        self._requests = {s: c.create_infer_request() for s, c in compiled.items()}
        self._lock = threading.Lock()
        self.device = torch.device("cpu")
        self.precision = precision

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        with self._lock:
            result = self._requests[side].infer([x])
            return np.array(result[0], np.float32)  # a copy: the request reuses its buffer

    def describe(self) -> str:
        import openvino as ov

        return f"openvino {ov.get_version()} {self.precision} on cpu"


def _load(folder: Path, loaded: LoadedModel, precision: str) -> OpenVinoRunner:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
        "CACHE_DIR": str(folder / "compiled"),
    }
    compiled: dict[str, Any] = {}
    for side in SIDES:
        path = folder / f"{side}.xml"
        try:
            model = core.read_model(str(path))
        except RuntimeError as err:
            raise BackendError(f"openvino cannot read {path}: {err}") from err
        found = openvino_fingerprint(model)
        if found != loaded.fingerprint:
            raise BackendError(f"{path} holds model {found}, not {loaded.fingerprint}")
        try:
            compiled[side] = core.compile_model(model, "CPU", config)
        except RuntimeError as err:
            raise BackendError(f"openvino cannot compile {path}: {err}") from err
        actual = compiled[side].get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if actual != _HINTS[precision]:
            raise DeviceError(f"openvino compiled {path} for {actual}, not {precision}")
    return OpenVinoRunner(compiled, precision)


def create(
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: Path | None = None,
) -> OpenVinoRunner:
    """Convert (once, cached) and compile both encoders."""
    target, chosen = resolve(device, precision)
    del target
    folder = cache_folder(loaded, NAME, chosen, cache_dir)

    def build(tmp: Path) -> None:
        for side in SIDES:
            export_openvino(loaded, side, tmp / f"{side}.xml")

    return cached(
        folder, graph_key(loaded, NAME, chosen), build, lambda f: _load(f, loaded, chosen)
    )
