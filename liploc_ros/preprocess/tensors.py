"""RGB / range pictures -> the encoders' normalised C x S x S float32 inputs.

Both modalities go through the same steps as in the authors' code: resize to a square with
OpenCV's bilinear filter on uint8 (aspect ratio not kept: :mod:`liploc_ros.preprocess.pictures`),
divide by 255, normalise with the ImageNet mean and std, channels first
(:func:`picture_input`). Training caches the resized pictures and normalises them with
:func:`picture_input` too, so both sides share one recipe.
"""

from __future__ import annotations

import numpy as np

from liploc_ros.preprocess.camera import ColorOrder
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.pictures import camera_picture, lidar_picture, resize_picture


def picture_input(
    picture: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """A resized uint8 picture (S x S x 3, or S x S gray) -> 3 x S x S float32: / 255, minus
    mean, / std, channels first (a gray picture is broadcast to the three channels)."""
    std_arr = np.asarray(std, dtype=np.float32)
    scale = (1.0 / (255.0 * std_arr))[:, None, None]
    offset = (np.asarray(mean, dtype=np.float32) / std_arr)[:, None, None]
    if picture.ndim == 2:
        chw = np.broadcast_to(picture[None], (3, *picture.shape))
    else:
        chw = picture.transpose(2, 0, 1)
    out = chw.astype(np.float32) * scale
    out -= offset
    return out


def normalize_picture(
    picture: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """H x W x 3 (or H x W gray) uint8 -> 3 x size x size float32, resized and normalised."""
    return picture_input(resize_picture(picture, size), mean, std)


def camera_input(
    image: np.ndarray, cfg: PreprocessConfig, order: ColorOrder = "rgb"
) -> np.ndarray:
    """A camera frame as the camera encoder's 3 x S x S float32 input."""
    return picture_input(camera_picture(image, cfg, order), cfg.camera.mean, cfg.camera.std)


def lidar_input(points: np.ndarray, cfg: PreprocessConfig, heading_deg: float = 0.0) -> np.ndarray:
    """A scan as the LiDAR encoder's 3 x S x S float32 input (range image with its crop
    centred at ``heading_deg``, then resize)."""
    picture = lidar_picture(points, cfg, heading_deg)
    return picture_input(picture, cfg.camera.mean, cfg.camera.std)
