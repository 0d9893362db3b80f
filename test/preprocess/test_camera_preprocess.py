"""Camera preprocessing: colour orders, and the tensor recipe against a plain computation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liploc_ros.errors import ImageFormatError
from liploc_ros.preprocess import PreprocessConfig, camera_input, lidar_input, range_image, to_rgb
from liploc_ros.preprocess.config import CameraConfig


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8)


def test_colour_orders_become_rgb(rgb):
    bgr = rgb[:, :, ::-1].copy()
    np.testing.assert_array_equal(to_rgb(bgr, "bgr"), rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(to_rgb(rgba, "rgba"), rgb)
    bgra = np.dstack([bgr, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(to_rgb(bgra, "bgra"), rgb)
    mono = rgb[:, :, 0]
    out = to_rgb(mono, "mono")
    assert out.shape == rgb.shape
    assert (out == mono[:, :, None]).all()
    mono16 = mono.astype(np.uint16) << 8
    np.testing.assert_array_equal(to_rgb(mono16, "mono"), out)


@pytest.mark.parametrize(
    ("image", "order", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "rgb", "empty"),
        (np.zeros((4, 5, 3), np.float32), "rgb", "dtype"),
        (np.zeros((4, 5), np.uint8), "rgb", "channel"),
        (np.zeros((4, 5, 3), np.uint8), "mono", "channel"),
        (np.zeros((4, 5, 3), np.uint8), "yuv422", "unknown colour order"),
    ],
)
def test_bad_images_raise(image, order, message):
    with pytest.raises(ImageFormatError, match=message):
        to_rgb(image, order)


def test_camera_input_is_resize_scale_normalise(rgb):
    cfg = PreprocessConfig(camera=CameraConfig(image_size=32))
    out = camera_input(rgb[:, :, ::-1].copy(), cfg, order="bgr")
    ref = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_LINEAR).astype(np.float64) / 255.0
    ref = (ref - np.array(cfg.camera.mean)) / np.array(cfg.camera.std)
    assert out.shape == (3, 32, 32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1e-5)


def test_lidar_input_is_the_range_image_through_the_same_recipe():
    rng = np.random.default_rng(1)
    pts = (rng.normal(size=(5000, 4)) * [15, 15, 1, 1]).astype(np.float32)
    cfg = PreprocessConfig(lidar_image_size=48)
    out = lidar_input(pts, cfg)
    picture = range_image(pts, cfg.lidar)
    ref = cv2.resize(picture, (48, 48), interpolation=cv2.INTER_LINEAR).astype(np.float64) / 255
    ref = (ref - np.array(cfg.camera.mean)) / np.array(cfg.camera.std)
    np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1e-5)
