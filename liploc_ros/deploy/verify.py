"""Run an export in its own runtime and compare it with PyTorch fp32: the check a user can
repeat on the target machine before trusting the files (``liploc export --verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.model.backends import require_packages
from liploc_ros.model.backends.base import INPUT_NAME, SIDES, example_input
from liploc_ros.model.liploc_file import LoadedModel


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two (N, D) arrays."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    dots = (a64 * b64).sum(1)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float((dots / np.maximum(norms, 1e-30)).min())


def run_export(folder: Path, manifest: dict[str, Any], side: str, batch: np.ndarray) -> np.ndarray:
    """The exported ``side`` encoder's embeddings of ``batch``, in the export's runtime
    (onnxruntime for ONNX, OpenVINO f32 for IR)."""
    file = str(folder / manifest["encoders"][side]["file"])
    if manifest["format"] == "onnx":
        require_packages("verifying an ONNX export", ("onnxruntime",), "onnx")
        import onnxruntime as ort

        session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {INPUT_NAME: batch})[0], np.float32)
    import openvino as ov

    compiled = ov.Core().compile_model(file, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.array(compiled([batch])[0], np.float32)


def verify_export(
    loaded: LoadedModel, folder: Path, manifest: dict[str, Any], batch: int = 3
) -> dict[str, float]:
    """Per encoder, the min cosine of the export's embeddings to PyTorch fp32's on random
    inputs, at a batch other than the traced one (so a lost dynamic axis shows)."""
    out: dict[str, float] = {}
    model = loaded.model.to("cpu", torch.float32).eval()
    for side in SIDES:
        x = example_input(loaded, side, batch)
        with torch.inference_mode():
            encode = model.encode_camera if side == "camera" else model.encode_lidar
            expected = encode(x).numpy()
        out[side] = min_cosine(run_export(folder, manifest, side, x.numpy()), expected)
    return out
