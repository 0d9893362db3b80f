"""What every inference backend provides, and the graph the non-torch backends convert.

A backend turns a loaded model into an :class:`EncoderRunner`: preprocessed (B, 3, S, S)
float32 batches in, (B, D) float32 embeddings out, for either encoder. The
:class:`~liploc_ros.model.inference.Embedder` does the checking and batching around it, so a
backend is only the part that differs: where and in which precision the network runs.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from liploc_ros.errors import BackendError
from liploc_ros.model.liploc import LipLocModel
from liploc_ros.model.liploc_file import LoadedModel

Side = Literal["camera", "lidar"]
SIDES: tuple[Side, ...] = ("camera", "lidar")
#: tensor names of the converted / exported encoder graphs
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
#: dtypes of a model that traces as fp32 (integer buffers: BatchNorm's batch counter)
_KEPT_DTYPES = (torch.float32, torch.int64)


class EncoderRunner(Protocol):
    """One model's two encoders, ready to run in one backend, device and precision."""

    @property
    def backend(self) -> str:
        """The backend's registry name ("torch", "openvino", "onnxruntime")."""
        ...

    @property
    def device(self) -> torch.device: ...

    @property
    def precision(self) -> str:
        """The concrete precision in effect ("fp32", "fp16", "bf16", "int8")."""
        ...

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, S, S) float32 CPU tensor -> (B, D) float32 embeddings."""
        ...

    def describe(self) -> str:
        """A short line for logs: backend, version, device, precision."""
        ...


class EncoderGraph(nn.Module):
    """One encoder end to end (backbone, fc, projection head, L2 norm as configured): the
    graph that is converted for OpenVINO / ONNX Runtime and exported for TensorRT, so that
    its output is exactly what a map stores."""

    def __init__(self, model: LipLocModel, side: Side) -> None:
        super().__init__()
        self.model = model
        self.side = side

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.side == "camera":
            return self.model.encode_camera(image)
        return self.model.encode_lidar(image)


def input_size(loaded: LoadedModel, side: Side) -> int:
    """The square input side (pixels) of ``side``'s encoder."""
    pre = loaded.preprocess
    return pre.camera.image_size if side == "camera" else pre.lidar_image_size


def example_input(loaded: LoadedModel, side: Side, batch: int = 2) -> torch.Tensor:
    """A random input batch for tracing; batch 2 so that exporters keep the batch dynamic
    (a traced batch of 1 is specialised as a constant)."""
    size = input_size(loaded, side)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=generator)


def fp32_cpu_model(loaded: LoadedModel) -> LipLocModel:
    """The model on the CPU in fp32 eval mode, the form converters trace: the loaded model
    itself when it is already so, else a copy (a model serving on CUDA stays there)."""
    model = loaded.model
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" and t.dtype in _KEPT_DTYPES for t in tensors):
        return model.eval()
    return copy.deepcopy(model).to("cpu", torch.float32).eval()


def joined(values: Mapping[Side, str]) -> str:
    """One value where the encoders agree, else ``camera X, lidar Y``."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return ", ".join(f"{side} {value}" for side, value in values.items())


class SidesRunner:
    """Encoders that run in different runners (one per side) behind one EncoderRunner: an
    INT8 camera encoder beside a refused LiDAR one, or two sides chosen apart by ``auto``."""

    def __init__(self, runners: Mapping[Side, EncoderRunner]) -> None:
        if not runners:
            raise ValueError("no encoder runners")
        self.runners = dict(runners)
        first = next(iter(self.runners.values()))
        self.device = first.device
        self.backend = joined({s: r.backend for s, r in self.runners.items()})
        self.precision = joined({s: r.precision for s, r in self.runners.items()})

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        try:
            runner = self.runners[side]
        except KeyError:
            raise BackendError(f"the {side} encoder was not loaded") from None
        return runner.encode(side, batch)

    def describe(self) -> str:
        lines = {s: r.describe() for s, r in self.runners.items()}
        return joined(lines)


@contextlib.contextmanager
def quiet_converter(loggers: list[logging.Logger], level: int) -> Iterator[None]:
    """A converter's progress prints, warnings and chatty log lines hidden (``loggers`` set
    to ``level`` meanwhile, then restored)."""
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(level)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, old in zip(loggers, levels, strict=True):
            lg.setLevel(old)
