"""Embeddings as float32 NumPy arrays: the one way the rest of the package runs a model.

The :class:`Embedder` owns the backend, the device, the precision and the batching, so that
map building, evaluation and the ROS node all embed exactly alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from liploc_ros.errors import ConfigError, PreprocessError
from liploc_ros.model.backends import DEFAULT_BACKEND, CalibrationSet, Side, create_runner
from liploc_ros.model.liploc_file import LoadedModel
from liploc_ros.preprocess.camera import ColorOrder
from liploc_ros.preprocess.tensors import camera_input, lidar_input


class Embedder:
    """Runs a loaded model's two encoders on batches of inputs, in eval mode.

    ``backend`` is who runs them: "auto" (default: the fastest verified configuration for
    this model on this machine, chosen per encoder on its first use and kept, see
    :mod:`liploc_ros.model.backends.auto`), "torch" (the model itself, moved to ``device``),
    "openvino" or "onnxruntime" (converted once and cached beside the model file, see
    :mod:`liploc_ros.model.backends`). ``precision`` "auto" with backend torch is fp16 on
    CUDA, bf16 on a CPU with bf16 matrix units and fp32 on other CPUs (see
    :func:`liploc_ros.device.resolve_precision`); "int8" needs a verified INT8 model in the
    cache (``liploc export --precision int8``) or ``calibration``, a source spec to quantize
    on (see :mod:`liploc_ros.model.backends.calibration`). The outputs are always float32
    NumPy arrays on the host. The torch backend's bf16 copy of the backbones is made here, so
    later changes to ``loaded.model``'s weights are not seen; make a new Embedder after
    training.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        batch_size: int = 32,
        backend: str = DEFAULT_BACKEND,
        cache_dir: str | Path | None = None,
        calibration: str | CalibrationSet | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.loaded = loaded
        self.runner = create_runner(
            backend, loaded, device=device, precision=precision, cache_dir=cache_dir,
            calibration=calibration, batch_size=batch_size,
        )  # fmt: skip
        self.device = self.runner.device
        self.batch_size = batch_size
        self.model = loaded.model
        pre = loaded.preprocess
        self._camera_size = pre.camera.image_size
        self._lidar_size = pre.lidar_image_size

    @property
    def backend(self) -> str:
        """Who runs the encoders: a backend's name; with auto, the ones chosen so far
        ("auto" before the first use)."""
        return self.runner.backend

    @property
    def precision(self) -> str:
        """The precision in effect (with auto: the ones chosen so far)."""
        return self.runner.precision

    def describe(self) -> str:
        """Backend, version, device and precision, for logs (with auto: each encoder's
        choice and its measured ms per frame)."""
        return self.runner.describe()

    def diagnostics(self) -> dict[str, str]:
        """Key-value pairs for /diagnostics: the runtime of each encoder used so far and, with
        auto, its measured latency."""
        out = {"inference": self.describe()}
        for side, decision in getattr(self.runner, "decisions", {}).items():
            out[f"inference {side}"] = f"{decision.backend} {decision.precision}"
            if decision.ms_per_frame is not None:
                out[f"inference {side} ms/frame"] = f"{decision.ms_per_frame:.2f}"
        return out

    @property
    def embed_dim(self) -> int:
        return self.loaded.embed_dim

    @property
    def fingerprint(self) -> str:
        return self.loaded.fingerprint

    def embed_camera(
        self, batch: torch.Tensor | np.ndarray, *, progress: bool = False
    ) -> np.ndarray:
        """(B, 3, S, S) preprocessed camera images -> (B, D) float32."""
        return self._run("camera", batch, self._camera_size, progress)

    def embed_lidar(
        self, batch: torch.Tensor | np.ndarray, *, progress: bool = False
    ) -> np.ndarray:
        """(B, 3, S, S) preprocessed range images -> (B, D) float32."""
        return self._run("lidar", batch, self._lidar_size, progress)

    def embed_images(
        self, images: Sequence[np.ndarray], *, order: ColorOrder = "rgb", progress: bool = False
    ) -> np.ndarray:
        """Raw H x W x 3 uint8 camera frames -> (B, D), preprocessed as the model expects."""
        pre = self.loaded.preprocess
        return self._embed_raw(
            images, lambda im: camera_input(im, pre, order), self.embed_camera, progress
        )

    def embed_scans(
        self, scans: Sequence[np.ndarray], *, progress: bool = False, heading_deg: float = 0.0
    ) -> np.ndarray:
        """Raw N x 4 float32 (x, y, z, intensity) scans -> (B, D) via range images whose crop
        faces ``heading_deg`` (0: forward, the authors' crop)."""
        pre = self.loaded.preprocess
        return self._embed_raw(
            scans, lambda pts: lidar_input(pts, pre, heading_deg), self.embed_lidar, progress
        )

    def _embed_raw(
        self,
        items: Sequence[np.ndarray],
        prepare: Callable[[np.ndarray], np.ndarray],
        embed: Callable[[np.ndarray], np.ndarray],
        progress: bool,
    ) -> np.ndarray:
        # Preprocess one batch at a time: a whole drive of 224 px inputs would not fit in memory.
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for start in _chunks(len(items), self.batch_size, progress):
            chunk = items[start : start + self.batch_size]
            out.append(embed(np.stack([prepare(x) for x in chunk])))
        return np.concatenate(out)

    def _run(
        self, side: Side, batch: torch.Tensor | np.ndarray, size: int, progress: bool
    ) -> np.ndarray:
        tensor = _as_input_tensor(batch, size, side)
        out = np.empty((tensor.shape[0], self.embed_dim), np.float32)
        for start in _chunks(tensor.shape[0], self.batch_size, progress):
            chunk = tensor[start : start + self.batch_size]
            out[start : start + len(chunk)] = self.runner.encode(side, chunk)
        return out


def _chunks(total: int, size: int, progress: bool) -> Iterable[int]:
    starts = range(0, total, size)
    return tqdm(starts, unit="batch", desc="embedding") if progress and len(starts) > 1 else starts


def _as_input_tensor(batch: torch.Tensor | np.ndarray, size: int, what: str) -> torch.Tensor:
    tensor = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
    if tensor.ndim != 4 or tuple(tensor.shape[1:]) != (3, size, size):
        raise PreprocessError(
            f"{what} batch must be (B, 3, {size}, {size}) as the model's preprocessing makes "
            f"it, got {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise PreprocessError(
            f"{what} batch must be preprocessed float32, got {tensor.dtype} (raw images go "
            "through embed_images / embed_scans)"
        )
    return tensor
