"""TensorRT engines of both encoders (``liploc export --format tensorrt``), on an NVIDIA GPU.

Each encoder is exported to ONNX (fp32, dynamic batch) and built by TensorRT's Python API
into ``<side>.plan`` with one optimisation profile (batch 1 optimal, up to ``max_batch``).
``fp16`` sets TensorRT's FP16 builder flag (TensorRT 10); TensorRT 11 removed that flag in
favour of strongly typed networks, where fp16 must be in the graph itself (NVIDIA's ModelOpt
AutoCast), so there only fp32 engines are built here and fp16 is refused with that advice.
An engine holds no metadata of ours: ``<side>.plan.json`` beside it records the model's
fingerprint, the precision, the TensorRT version and the GPU (an engine runs only on the GPU
model and TensorRT version that built it).

Not run on the development machines (no GPU); ``bench/gpu_check.sh`` runs it where one is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from liploc_ros.errors import BackendError, DeviceError
from liploc_ros.model.backends.base import INPUT_NAME, OUTPUT_NAME, SIDES, input_size
from liploc_ros.model.backends.onnx_process import export_onnx_files
from liploc_ros.model.liploc_file import LoadedModel


def _trt() -> Any:
    if not torch.cuda.is_available():
        raise DeviceError("a TensorRT engine is built on an NVIDIA GPU; none is available here")
    import tensorrt as trt

    return trt


def build_engine(onnx_path: Path, precision: str, size: int, max_batch: int) -> bytes:
    """A serialized engine of one encoder's ONNX file."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise DeviceError(
                f"TensorRT {trt.__version__} builds fp16 only from an fp16-typed graph; install "
                "TensorRT 10 (pip install 'tensorrt-cu12<11' or 'tensorrt-cu13<11') for "
                "--precision fp16, or export fp32"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    shape = (3, size, size)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, *shape), (1, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT could not build an engine of {onnx_path.name}")
    return bytes(serialized)


def build_engines(loaded: LoadedModel, out: Path, precision: str, max_batch: int) -> dict:
    """``out/<side>.plan`` and its ``.plan.json`` for both encoders; the manifest's additions."""
    trt = _trt()
    gpu = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory(prefix="liploc-trt-") as tmp:
        onnx_files: dict[str, Path] = {side: Path(tmp) / f"{side}.onnx" for side in SIDES}
        export_onnx_files(loaded, onnx_files)
        for side in SIDES:
            path = onnx_files[side]
            engine = build_engine(path, precision, input_size(loaded, side), max_batch)
            (out / f"{side}.plan").write_bytes(engine)
            sidecar = {
                "fingerprint": loaded.fingerprint,
                "precision": precision,
                "tensorrt": trt.__version__,
                "gpu": gpu,
                "max_batch": max_batch,
            }
            (out / f"{side}.plan.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return {"tensorrt": trt.__version__, "gpu": gpu}


def engine_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded beside an engine (None: none recorded)."""
    try:
        data = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("fingerprint") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


class EngineRunner:
    """One built engine run on CUDA tensors: (B, 3, S, S) float32 -> (B, D) float32."""

    def __init__(self, plan: Path, embed_dim: int) -> None:
        trt = _trt()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(self._logger).deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:
            raise BackendError(f"TensorRT cannot load {plan} (built by another version/GPU?)")
        self._context = self._engine.create_execution_context()
        self._dim = embed_dim

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to("cuda", torch.float32).contiguous()
        out = torch.empty((x.shape[0], self._dim), device="cuda", dtype=torch.float32)
        self._context.set_input_shape(INPUT_NAME, tuple(x.shape))
        self._context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self._context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        if not self._context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise BackendError("TensorRT failed to run the engine")
        return out
