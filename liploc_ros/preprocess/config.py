"""Preprocessing configuration: the LiDAR sensor model, the range-image rules and camera input.

A model file stores the :class:`PreprocessConfig` it was trained with, and a map stores the
:class:`RangeImageConfig` it was built with, so that a model is never fed inputs prepared
differently from its training data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from liploc_ros.config_fields import Choice, set_choice
from liploc_ros.errors import ConfigError

#: ImageNet statistics used by the authors for both modalities.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EmptyMode(Choice):
    """What the range image's empty pixels (no return) read."""

    #: 251: the authors' uint8 wrap of -5.1, needed for parity with their checkpoints
    AUTHORS = "authors"
    #: 0
    CLEAN = "clean"


@dataclass(frozen=True)
class RangeImageConfig:
    """Spherical projection of a scan; defaults are the authors' HDL-64E settings."""

    #: preset this config was derived from (informative only)
    sensor: str = "hdl64e"
    #: rows (one per beam for a spinning LiDAR)
    height: int = 64
    #: columns over 360 degrees of azimuth
    width: int = 900
    fov_up_deg: float = 3.0
    fov_down_deg: float = -25.0
    #: points at or beyond this range are dropped; also sets the 8-bit scale 255 / max_range
    max_range: float = 50.0
    #: optional pre-filter ||xyz|| < distance_threshold (the authors' KITTI-360 runs: 50 m)
    distance_threshold: float | None = None
    #: keep the upper half and the forward third of the image, as the authors do
    crop: bool = True
    #: what empty range pixels read (:class:`EmptyMode`)
    empty_mode: EmptyMode = EmptyMode.AUTHORS

    def __post_init__(self) -> None:
        set_choice(self, "empty_mode", EmptyMode)
        if self.height < 2 or self.width < 3:
            raise ConfigError(f"range image {self.height}x{self.width} is too small")
        if not self.fov_up_deg > self.fov_down_deg:
            raise ConfigError(
                f"fov_up_deg ({self.fov_up_deg}) must be above fov_down_deg ({self.fov_down_deg})"
            )
        if self.max_range <= 0:
            raise ConfigError(f"max_range must be positive, got {self.max_range}")
        if self.distance_threshold is not None and self.distance_threshold <= 0:
            raise ConfigError(
                f"distance_threshold must be positive, got {self.distance_threshold}"
            )

    @property
    def crop_rows(self) -> tuple[int, int]:
        """Half-open row range kept by the crop (the upper half)."""
        return (0, self.height // 2) if self.crop else (0, self.height)

    @property
    def crop_cols(self) -> tuple[int, int]:
        """Half-open column range kept by the crop (the forward third, yaw 0 at its centre)."""
        third = self.width // 3
        return (third, 2 * third) if self.crop else (0, self.width)


#: Sensor presets. HDL-64E uses the authors' values (not the datasheet's +2/-24.9 deg) so that
#: their checkpoints see the images they were trained on.
SENSOR_PRESETS: dict[str, RangeImageConfig] = {
    "hdl64e": RangeImageConfig(),
    "hdl32e": RangeImageConfig(
        sensor="hdl32e",
        height=32,
        width=1080,
        fov_up_deg=10.67,
        fov_down_deg=-30.67,
        max_range=80.0,
    ),
    "vlp16": RangeImageConfig(
        sensor="vlp16",
        height=16,
        width=1800,
        fov_up_deg=15.0,
        fov_down_deg=-15.0,
        max_range=100.0,
    ),
    "vlp32c": RangeImageConfig(
        sensor="vlp32c",
        height=32,
        width=1800,
        fov_up_deg=15.0,
        fov_down_deg=-25.0,
        max_range=100.0,
    ),
    "os1-64": RangeImageConfig(
        sensor="os1-64",
        height=64,
        width=1024,
        fov_up_deg=22.5,
        fov_down_deg=-22.5,
        max_range=100.0,
    ),
    "os1-128": RangeImageConfig(
        sensor="os1-128",
        height=128,
        width=1024,
        fov_up_deg=22.5,
        fov_down_deg=-22.5,
        max_range=100.0,
    ),
}


def sensor_preset(name: str, **overrides: Any) -> RangeImageConfig:
    """A preset by name, with optional field overrides (``distance_threshold=50.0``, ...)."""
    try:
        base = SENSOR_PRESETS[name.lower()]
    except KeyError as err:
        known = ", ".join(sorted(SENSOR_PRESETS))
        raise ConfigError(f"unknown LiDAR sensor preset {name!r}; known: {known}") from err
    return dataclasses.replace(base, **overrides) if overrides else base


@dataclass(frozen=True)
class CameraConfig:
    """How a camera frame becomes the camera encoder's input."""

    #: square side the image is resized to (aspect ratio not kept, as the authors do)
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ConfigError(f"image_size must be at least 8, got {self.image_size}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that turns raw sensor data into the two encoders' inputs."""

    lidar: RangeImageConfig = field(default_factory=RangeImageConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    #: side the cropped range image is resized to; the authors use the camera's (224)
    lidar_image_size: int = 224
