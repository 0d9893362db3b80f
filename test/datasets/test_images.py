"""Raw / compressed image buffers <-> RGB (liploc_ros.datasets.images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liploc_ros.datasets.images import (
    SUPPORTED_ENCODINGS,
    CorruptImageError,
    compressed_to_rgb,
    raw_to_rgb,
    rgb_to_compressed,
    rgb_to_raw,
)
from liploc_ros.errors import ImageFormatError

RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _smooth(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1
    ).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_raw_roundtrip_is_exact(encoding):
    data, step = rgb_to_raw(RGB, encoding)
    assert step == 7 * 3
    out = raw_to_rgb(encoding, 5, 7, step, data.tobytes())
    np.testing.assert_array_equal(out, RGB)
    assert out.flags.c_contiguous
    assert out.flags.writeable
    assert out.dtype == np.uint8


def test_bgr8_really_swaps_channels():
    data, _ = rgb_to_raw(RGB, "bgr8")
    np.testing.assert_array_equal(data.reshape(5, 7, 3), RGB[:, :, ::-1])


def test_padded_rows_are_skipped():
    step = 7 * 3 + 5
    buf = np.full((5, step), 77, np.uint8)
    buf[:, :21] = RGB.reshape(5, 21)
    np.testing.assert_array_equal(raw_to_rgb("rgb8", 5, 7, step, buf.reshape(-1)), RGB)


def test_four_channel_and_mono_encodings():
    alpha = np.full((5, 7, 1), 9, np.uint8)
    rgba = np.concatenate([RGB, alpha], axis=2)
    bgra = np.concatenate([RGB[:, :, ::-1], alpha], axis=2)
    np.testing.assert_array_equal(raw_to_rgb("rgba8", 5, 7, 28, rgba.tobytes()), RGB)
    np.testing.assert_array_equal(raw_to_rgb("bgra8", 5, 7, 28, bgra.tobytes()), RGB)
    mono = RGB[:, :, 0].copy()
    out = raw_to_rgb("mono8", 5, 7, 7, mono.tobytes())
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_scales_full_range_to_8_bit(bigendian):
    values = np.array([[0, 257, 65535, 32896]], np.uint16)
    raw = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = raw_to_rgb("mono16", 1, 4, 8, raw, is_bigendian=bigendian)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 128])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


@pytest.mark.parametrize(
    ("encoding", "pattern"),
    [
        ("bayer_rggb8", ("R", "G", "G", "B")),
        ("bayer_bggr8", ("B", "G", "G", "R")),
        ("bayer_gbrg8", ("G", "B", "R", "G")),
        ("bayer_grbg8", ("G", "R", "B", "G")),
    ],
)
def test_bayer_mosaics_demosaic_to_the_right_colour(encoding, pattern):
    # a flat colour, mosaicked by hand with the ROS pattern (2 x 2 block at pixel 0, 0)
    colour = {"R": 200, "G": 90, "B": 30}
    mosaic = np.zeros((8, 8), np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = colour[pattern[k]]
    out = raw_to_rgb(encoding, 8, 8, 8, mosaic.tobytes())
    centre = out[2:6, 2:6].reshape(-1, 3).astype(int)
    assert np.abs(centre - [200, 90, 30]).max() <= 2


def test_unsupported_encoding_names_the_supported_ones():
    with pytest.raises(
        ImageFormatError, match=r"unsupported image encoding '32FC1'.*rgb8"
    ) as info:
        raw_to_rgb("32FC1", 5, 7, 28, bytes(140))
    assert not isinstance(info.value, CorruptImageError)
    assert "mono16" in SUPPORTED_ENCODINGS


@pytest.mark.parametrize(
    ("height", "width", "step", "size", "match"),
    [
        (5, 7, 20, 200, r"step 20 is smaller than one row"),
        (5, 7, 21, 100, r"buffer too short: 100 bytes"),
        (0, 7, 21, 0, r"zero size"),
        (5, 0, 0, 0, r"zero size"),
    ],
)
def test_inconsistent_buffers_are_corrupt(height, width, step, size, match):
    with pytest.raises(CorruptImageError, match=match):
        raw_to_rgb("rgb8", height, width, step, bytes(size))


def test_mono16_odd_step_is_corrupt():
    with pytest.raises(CorruptImageError, match="multiple of 2"):
        raw_to_rgb("mono16", 2, 3, 7, bytes(14))


def test_jpeg_roundtrip_is_close_and_png_exact():
    image = _smooth()
    data, fmt = rgb_to_compressed(image, "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8"
    out = compressed_to_rgb(data, fmt)
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    # JPEG is lossy: close on a smooth image, not equal
    assert np.abs(out.astype(int) - image).mean() < 2.0
    png, fmt = rgb_to_compressed(RGB, "png")
    np.testing.assert_array_equal(compressed_to_rgb(png.tobytes(), fmt), RGB)


def test_compressed_channel_order_is_rgb():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    ok, png = cv2.imencode(".png", red[:, :, ::-1])  # what a ROS driver writes: BGR
    assert ok
    out = compressed_to_rgb(png, "bgr8; png compressed bgr8")
    assert out[..., 0].min() == 255
    assert out[..., 2].max() == 0


def test_corrupt_compressed_data_is_a_clear_error():
    data, _ = rgb_to_compressed(_smooth(), "jpeg")
    with pytest.raises(CorruptImageError, match="cannot decode compressed image"):
        compressed_to_rgb(b"\xff\xd8garbage" * 10, "jpeg")
    with pytest.raises(CorruptImageError, match="no data"):
        compressed_to_rgb(b"", "jpeg")
    with pytest.raises(CorruptImageError):
        compressed_to_rgb(data[:20], "jpeg")
    with pytest.raises(ImageFormatError, match="compressed depth"):
        compressed_to_rgb(data, "16UC1; compressedDepth png")


def test_writer_side_rejects_bad_images():
    with pytest.raises(ImageFormatError, match="H x W x 3 uint8"):
        rgb_to_raw(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageFormatError, match="H x W x 3 uint8"):
        rgb_to_raw(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageFormatError, match="cannot write image encoding"):
        rgb_to_raw(RGB, "mono8")
    with pytest.raises(ImageFormatError, match="jpeg' or 'png"):
        rgb_to_compressed(RGB, "webp")
