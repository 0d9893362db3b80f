"""Frames -> the 8-bit square pictures the encoders see (before normalisation).

The one resize recipe of the package: serving (:mod:`liploc_ros.preprocess.tensors`) and
training (which caches these pictures and normalises them later, after its augmentation)
both call these functions, so a trained model sees at run time exactly the inputs it was
trained on.
"""

from __future__ import annotations

import cv2
import numpy as np

from liploc_ros.preprocess.camera import ColorOrder, to_rgb
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.range_image import project_range, range_to_uint8


def resize_picture(picture: np.ndarray, size: int) -> np.ndarray:
    """H x W x 3 (or H x W gray) uint8 -> size x size, OpenCV bilinear on uint8 as the
    authors' code (aspect ratio not kept)."""
    return cv2.resize(picture, (size, size), interpolation=cv2.INTER_LINEAR)


def camera_picture(
    image: np.ndarray, cfg: PreprocessConfig, order: ColorOrder = "rgb"
) -> np.ndarray:
    """A camera frame resized as the camera encoder sees it: S x S x 3 uint8 RGB."""
    return resize_picture(to_rgb(image, order), cfg.camera.image_size)


def lidar_picture(
    points: np.ndarray, cfg: PreprocessConfig, heading_deg: float = 0.0
) -> np.ndarray:
    """A scan's cropped 8-bit range image (crop centred at ``heading_deg``) resized as the
    LiDAR encoder sees it: S x S uint8, one gray channel (the encoder's three channels are
    copies of it, which resize identically, so it is resized once)."""
    gray = range_to_uint8(project_range(points, cfg.lidar, heading_deg=heading_deg), cfg.lidar)
    return resize_picture(gray, cfg.lidar_image_size)
