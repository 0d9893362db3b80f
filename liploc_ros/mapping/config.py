"""How a map is built: keyframe spacing, batching, device, storage.

The same fields are the ``build`` section of ``config/map_builder.yaml`` (ROS 2 parameters
``build.keyframe_distance``, ...), read by the map builder node and by ``liploc build-map``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liploc_ros.config_fields import Choice, param, set_choice
from liploc_ros.device import Precision
from liploc_ros.errors import ConfigError
from liploc_ros.mapping.headings import DEFAULT_HEADINGS, parse_headings


class EmbeddingDtype(Choice):
    """How the embeddings are stored in a map."""

    FLOAT32 = "float32"
    #: half the size
    FLOAT16 = "float16"


def _index_doc() -> str:
    """The index parameter's text, written when asked: it lists the registered kinds."""
    from liploc_ros.mapdb.indexes.registry import choices_text

    return f"search index stored with the map: {choices_text(' or ')}"


@dataclass(frozen=True)
class MapBuildConfig:
    """Map building settings; the defaults suit a KITTI-like drive at ~10 Hz."""

    keyframe_distance: float = param(
        1.0, "metres from the last kept scan before another one is kept; 0 keeps every scan"
    )
    batch_size: int = param(32, "scans encoded together")
    device: str = param("auto", "compute device: auto, cpu, cuda or cuda:N")
    precision: Precision = param(
        Precision.AUTO,
        "auto (with backend auto: the fastest verified precision here; else fp16 on CUDA, bf16"
        " on a CPU with bf16 units, int8 where a verified INT8 model is cached, else fp32),"
        " fp32, fp16, bf16 or int8 (liploc export --precision int8 makes one)",
    )
    backend: str = param(
        "auto",
        "inference runtime of the LiDAR encoder: auto (the fastest verified configuration for"
        " this model on this machine, measured on first use and cached), torch, openvino or"
        " onnxruntime (liploc_ros.model.backends)",
    )
    dtype: EmbeddingDtype = param(
        EmbeddingDtype.FLOAT32, "storage type of the embeddings in the map: float32 or float16"
    )
    index: str = param("auto", _index_doc)
    workers: int = param(
        2, "threads that read and preprocess scans while the model encodes; 0: all in one thread"
    )
    frame_id: str = param(
        "map",
        "the map frame: the map's poses are expressed in it (live mode: the tf target frame)",
    )
    headings: tuple[float, ...] = param(
        DEFAULT_HEADINGS,
        "crop headings in degrees, counter-clockwise from the LiDAR's x axis (integers or"
        " floats, e.g. [0, 180]): one map entry per keyframe and heading, its range image"
        " cropped around that heading, its pose the LiDAR's turned by it; [0.0]: the forward"
        " crop only (the authors' maps). Distinct modulo 360, at most 36",
    )

    calibration_frames: int = param(
        600,
        "camera frames of the drive (with poses) the map's score calibration is measured on,"
        " when the source has them (liploc_ros.localization.calibration); 0: no calibration"
        " (the localizers then use conservative settings)",
    )

    def __post_init__(self) -> None:
        kd = self.keyframe_distance
        if not (math.isfinite(kd) and kd >= 0.0):
            raise ConfigError(f"keyframe_distance must be a finite number >= 0, got {kd}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.calibration_frames < 0:
            raise ConfigError(f"calibration_frames must be >= 0, got {self.calibration_frames}")
        set_choice(self, "precision", Precision)
        set_choice(self, "dtype", EmbeddingDtype)
        from liploc_ros.model.backends import backend_spec

        backend_spec(self.backend)  # an unknown name is a ConfigError listing the known ones
        from liploc_ros.mapdb.indexes.registry import choices_text, index_choices

        if self.index not in index_choices():
            raise ConfigError(f"index {self.index!r} is not one of {choices_text()}")
        if not self.device.strip():
            raise ConfigError("device must not be empty (use auto, cpu, cuda or cuda:N)")
        if not self.frame_id.strip():
            raise ConfigError("frame_id must not be empty")
        # normalised: [0, 360), ascending; an integer count is accepted from Python callers
        object.__setattr__(self, "headings", parse_headings(self.headings))


#: the defaults, as a shared immutable instance for argument defaults
DEFAULT_CONFIG = MapBuildConfig()
