"""Sensor data -> encoder inputs: LiDAR range images and camera frames."""

from liploc_ros.preprocess.camera import to_rgb
from liploc_ros.preprocess.config import (
    SENSOR_PRESETS,
    CameraConfig,
    PreprocessConfig,
    RangeImageConfig,
    sensor_preset,
)
from liploc_ros.preprocess.range_image import project_range, range_image, range_to_uint8
from liploc_ros.preprocess.tensors import camera_input, lidar_input, normalize_picture

__all__ = [
    "SENSOR_PRESETS",
    "CameraConfig",
    "PreprocessConfig",
    "RangeImageConfig",
    "camera_input",
    "lidar_input",
    "normalize_picture",
    "project_range",
    "range_image",
    "range_to_uint8",
    "sensor_preset",
    "to_rgb",
]
