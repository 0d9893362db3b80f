"""How a map is built: keyframe spacing, batching, device, storage.

The same fields are the ``build`` section of ``config/map_builder.yaml`` (ROS 2 parameters
``build.keyframe_distance``, ...), read by the map builder node and by ``liploc build-map``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from liploc_ros.device import PRECISIONS
from liploc_ros.errors import ConfigError

#: the index kinds a map file can carry (see liploc_ros.mapdb)
INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")


@dataclass(frozen=True)
class MapBuildConfig:
    """Map building settings; the defaults suit a KITTI-like drive at ~10 Hz."""

    #: metres from the last kept scan before another one is kept; 0 keeps every scan
    keyframe_distance: float = 1.0
    #: scans encoded together
    batch_size: int = 32
    #: "auto", "cpu", "cuda", "cuda:N"
    device: str = "auto"
    #: "auto" (fp16 on CUDA, bf16 on a CPU with bf16 units, else fp32), "fp32", "fp16", "bf16"
    precision: str = "auto"
    #: inference runtime: "torch", "openvino", "onnxruntime" (liploc_ros.model.backends)
    backend: str = "torch"
    #: how the embeddings are stored in the map
    dtype: Literal["float32", "float16"] = "float32"
    #: search index stored with the map: "auto", "flat", "ivf", "hnsw"
    index: str = "auto"
    #: threads that read and preprocess scans while the model encodes; 0: all in one thread
    workers: int = 2
    #: the frame the map's poses are expressed in
    frame_id: str = "map"

    def __post_init__(self) -> None:
        kd = self.keyframe_distance
        if not (math.isfinite(kd) and kd >= 0.0):
            raise ConfigError(f"keyframe_distance must be a finite number >= 0, got {kd}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        from liploc_ros.model.backends import backend_spec

        backend_spec(self.backend)  # an unknown name is a ConfigError listing the known ones
        if self.index not in INDEX_KINDS:
            raise ConfigError(f"index {self.index!r} is not one of {', '.join(INDEX_KINDS)}")
        if not self.device.strip():
            raise ConfigError("device must not be empty (use auto, cpu, cuda or cuda:N)")
        if not self.frame_id.strip():
            raise ConfigError("frame_id must not be empty")


#: the defaults, as a shared immutable instance for argument defaults
DEFAULT_CONFIG = MapBuildConfig()
