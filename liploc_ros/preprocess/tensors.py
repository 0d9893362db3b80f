"""RGB / range pictures -> the encoders' normalised C x S x S float32 inputs.

Both modalities go through the same steps as in the authors' code: resize to a square with
OpenCV's bilinear filter on uint8 (aspect ratio not kept), divide by 255, normalise with the
ImageNet mean and std, channels first.
"""

from __future__ import annotations

import cv2
import numpy as np

from liploc_ros.preprocess.camera import ColorOrder, to_rgb
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.range_image import project_range, range_to_uint8


def normalize_picture(
    picture: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """H x W x 3 (or H x W gray) uint8 -> 3 x size x size float32, resized and normalised."""
    resized = cv2.resize(picture, (size, size), interpolation=cv2.INTER_LINEAR)
    scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float32)))[:, None, None]
    offset = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32))[
        :, None, None
    ]
    if resized.ndim == 2:
        # A gray picture replicated to 3 channels resizes identically channel by channel,
        # so it is resized once and broadcast.
        chw = np.broadcast_to(resized[None], (3, size, size))
    else:
        chw = resized.transpose(2, 0, 1)
    out = chw.astype(np.float32) * scale
    out -= offset
    return out


def camera_input(
    image: np.ndarray, cfg: PreprocessConfig, order: ColorOrder = "rgb"
) -> np.ndarray:
    """A camera frame as the camera encoder's 3 x S x S float32 input."""
    cam = cfg.camera
    return normalize_picture(to_rgb(image, order), cam.image_size, cam.mean, cam.std)


def lidar_input(points: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """A scan as the LiDAR encoder's 3 x S x S float32 input (range image, then resize)."""
    gray = range_to_uint8(project_range(points, cfg.lidar), cfg.lidar)
    return normalize_picture(gray, cfg.lidar_image_size, cfg.camera.mean, cfg.camera.std)
