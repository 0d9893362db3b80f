"""Sensor data -> encoder inputs: LiDAR range images and camera frames."""

from liploc_ros.preprocess.camera import to_rgb
from liploc_ros.preprocess.config import (
    SENSOR_PRESETS,
    CameraConfig,
    PreprocessConfig,
    RangeImageConfig,
    sensor_preset,
)
from liploc_ros.preprocess.pictures import camera_picture, lidar_picture, resize_picture
from liploc_ros.preprocess.range_image import project_range, range_image, range_to_uint8
from liploc_ros.preprocess.tensors import (
    camera_input,
    lidar_input,
    normalize_picture,
    picture_input,
)

__all__ = [
    "SENSOR_PRESETS",
    "CameraConfig",
    "PreprocessConfig",
    "RangeImageConfig",
    "camera_input",
    "camera_picture",
    "lidar_input",
    "lidar_picture",
    "normalize_picture",
    "picture_input",
    "project_range",
    "range_image",
    "range_to_uint8",
    "resize_picture",
    "sensor_preset",
    "to_rgb",
]
