"""The ONNX Runtime backend: the encoders exported to ONNX (fp32) and run by onnxruntime.

ONNX Runtime is the portable choice (AMD and Arm CPUs, Windows, CUDA through
onnxruntime-gpu). It runs fp32 only here: its CPU provider has no fast bf16 kernels, and
the fp16 conversion a GPU would want is left to TensorRT, which takes the same exported
file (``liploc export``). ``auto`` is therefore fp32; bf16 and fp16 are refused with the
backends that do them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.deploy.metadata import FINGERPRINT
from liploc_ros.deploy.onnx_process import export_onnx_files
from liploc_ros.device import resolve_device
from liploc_ros.errors import BackendError, DeviceError
from liploc_ros.model.backends.base import INPUT_NAME, SIDES, Side
from liploc_ros.model.backends.cache import cache_folder, cached, graph_key
from liploc_ros.model.liploc_file import LoadedModel

NAME = "onnxruntime"


def resolve(device: str | torch.device, precision: str) -> tuple[torch.device, str]:
    """The device and precision ONNX Runtime runs with, or a DeviceError saying why not;
    ``auto`` is CUDA only where a GPU and this onnxruntime's CUDA provider are both there."""
    target = resolve_device(device)
    if str(device).lower() == "auto" and target.type == "cuda" and not _has_cuda_provider():
        target = torch.device("cpu")
    if precision not in ("auto", "fp32"):
        raise DeviceError(
            f"the onnxruntime backend runs fp32 only, not {precision}; for bf16 use backend "
            "torch or openvino (on a CPU with bf16 units), for fp16 backend torch on CUDA"
        )
    return target, "fp32"


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _providers(device: torch.device) -> list[str | tuple[str, dict[str, int]]]:
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if not _has_cuda_provider():
        raise DeviceError(
            f"device {device} asked for with backend onnxruntime, but this onnxruntime has no "
            "CUDA provider (pip install onnxruntime-gpu instead of onnxruntime)"
        )
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


class OnnxRuntimeRunner:
    """Two onnxruntime sessions, one per encoder."""

    backend = NAME

    def __init__(self, sessions: dict[str, Any], device: torch.device) -> None:
        """``sessions``: an onnxruntime InferenceSession per side (onnxruntime is untyped)."""
        self._sessions = sessions
        self.device = device
        self.precision = "fp32"

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (out,) = self._sessions[side].run(None, {INPUT_NAME: x})
        return np.asarray(out, np.float32)

    def describe(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} fp32 on {self.device}"


def _load(folder: Path, loaded: LoadedModel, device: torch.device) -> OnnxRuntimeRunner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle threads sleep instead of spinning: the map builder's preprocessing threads and a
    # node's ROS executor share these cores (spinning halved the builder's scans/s here)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions: dict[str, Any] = {}
    for side in SIDES:
        path = folder / f"{side}.onnx"
        try:
            session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except DeviceError:
            raise
        except Exception as err:  # onnxruntime raises its own non-public exception types
            raise BackendError(f"onnxruntime cannot load {path}: {err}") from err
        found = session.get_modelmeta().custom_metadata_map.get(FINGERPRINT)
        if found != loaded.fingerprint:
            raise BackendError(f"{path} holds model {found}, not {loaded.fingerprint}")
        sessions[side] = session
    return OnnxRuntimeRunner(sessions, device)


def create(
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: Path | None = None,
) -> OnnxRuntimeRunner:
    """Export (once, cached) and load both encoders into onnxruntime sessions."""
    target, chosen = resolve(device, precision)
    _providers(target)  # refuse a missing CUDA provider before spending a minute exporting
    folder = cache_folder(loaded, NAME, chosen, cache_dir)

    def build(tmp: Path) -> None:
        export_onnx_files(loaded, {side: tmp / f"{side}.onnx" for side in SIDES})

    return cached(
        folder, graph_key(loaded, NAME, chosen), build, lambda f: _load(f, loaded, target)
    )
