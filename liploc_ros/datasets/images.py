"""Raw and compressed ROS image buffers <-> RGB arrays, with no ROS types involved.

The functions take the plain fields of ``sensor_msgs/Image`` (encoding, height, width, step,
data) or ``sensor_msgs/CompressedImage`` (format, data), so the same code serves rosbags
messages in the bag reader and rclpy messages in the ROS nodes, without cv_bridge.

Every decoder returns H x W x 3 uint8 RGB, C-contiguous and writable (a copy, never a view of
the message buffer), the convention of :class:`liploc_ros.datasets.base.Frame`.

Errors: an encoding this module cannot convert raises :class:`ImageFormatError`; a buffer that
does not fit its own header (zero size, step too small, data too short, undecodable JPEG/PNG)
raises :class:`CorruptImageError`, a subclass, so that a bag reader can skip one damaged
message yet stop on a topic whose every message is unreadable.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from liploc_ros.errors import ImageFormatError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "CorruptImageError",
    "compressed_to_rgb",
    "raw_to_rgb",
    "rgb_to_compressed",
    "rgb_to_raw",
]


class CorruptImageError(ImageFormatError):
    """An image buffer is inconsistent with its header or cannot be decoded."""


# encoding -> (channels, numpy dtype of one channel)
_LAYOUT: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"),
    "bgr8": (3, "u1"),
    "rgba8": (4, "u1"),
    "bgra8": (4, "u1"),
    "mono8": (1, "u1"),
    "mono16": (1, "u2"),
    "bayer_rggb8": (1, "u1"),
    "bayer_bggr8": (1, "u1"),
    "bayer_gbrg8": (1, "u1"),
    "bayer_grbg8": (1, "u1"),
}

# OpenCV names a Bayer pattern after the 2 x 2 block starting at pixel (1, 1), ROS after the
# one at (0, 0): ROS rggb is OpenCV "BG" (the same mapping cv_bridge uses).
_BAYER_TO_RGB = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}

#: encodings :func:`raw_to_rgb` converts
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUT)
#: encodings :func:`rgb_to_raw` writes
WRITABLE_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8")


def raw_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    is_bigendian: bool = False,
) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` buffer to H x W x 3 uint8 RGB.

    mono8 is copied to the three channels; mono16 is scaled to 8 bit over its full range
    (``round(v / 257)``, so 65535 -> 255), which keeps relative brightness without guessing a
    sensor-specific window; alpha is dropped; 8-bit Bayer mosaics are demosaiced by OpenCV.
    """
    enc = encoding.strip().lower()
    if enc not in _LAYOUT:
        raise ImageFormatError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    channels, kind = _LAYOUT[enc]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise CorruptImageError(f"{enc} image has zero size ({width} x {height})")
    itemsize = np.dtype(kind).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise CorruptImageError(
            f"{enc} image step {step} is smaller than one row ({width} px x {channels * itemsize}"
            f" bytes = {row_bytes})"
        )
    if step % itemsize:
        raise CorruptImageError(f"{enc} image step {step} is not a multiple of {itemsize} bytes")
    buf = _as_bytes(data)
    if buf.size < step * height:
        raise CorruptImageError(
            f"{enc} image buffer too short: {buf.size} bytes for {height} rows of step {step} "
            f"(need {step * height})"
        )
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)

    return _TO_RGB[enc](pixels)


def _mono16_to_rgb(pixels: np.ndarray) -> np.ndarray:
    mono = np.rint(pixels.astype(np.float32) / 257.0).astype(np.uint8)
    return np.repeat(mono, 3, axis=2)


def _bayer(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda pixels: cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), code)


# encoding -> H x W x C pixels (a view of the buffer) to a fresh C-contiguous RGB array
# (OpenCV's channel shuffles are ~20x faster than numpy's strided copies)
_TO_RGB = {
    "rgb8": lambda p: p.copy(),
    "bgr8": lambda p: cv2.cvtColor(p, cv2.COLOR_BGR2RGB),
    "rgba8": lambda p: cv2.cvtColor(p, cv2.COLOR_RGBA2RGB),
    "bgra8": lambda p: cv2.cvtColor(p, cv2.COLOR_BGRA2RGB),
    "mono8": lambda p: cv2.cvtColor(p[:, :, 0], cv2.COLOR_GRAY2RGB),
    "mono16": _mono16_to_rgb,
    **{enc: _bayer(code) for enc, code in _BAYER_TO_RGB.items()},
}


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[np.ndarray, int]:
    """Pack an H x W x 3 uint8 RGB image for a ``sensor_msgs/Image``.

    Returns ``(data, step)``: the flat uint8 buffer (rows unpadded) and the row length.
    """
    image = check_rgb(rgb)
    enc = encoding.strip().lower()
    if enc == "rgb8":
        out = np.ascontiguousarray(image)
    elif enc == "bgr8":
        out = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    else:
        raise ImageFormatError(
            f"cannot write image encoding {encoding!r}; writable: {', '.join(WRITABLE_ENCODINGS)}"
        )
    return out.reshape(-1), image.shape[1] * 3


def compressed_to_rgb(
    data: bytes | bytearray | memoryview | np.ndarray, fmt: str = ""
) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to H x W x 3 uint8 RGB.

    The codec is taken from the data itself (OpenCV reads the magic bytes); ``fmt`` is only
    checked for the depth formats of ``compressed_depth_image_transport``, which are not
    colour images and are refused.
    """
    if "compresseddepth" in fmt.replace(" ", "").lower():
        raise ImageFormatError(f"compressed depth images are not supported (format {fmt!r})")
    buf = _as_bytes(data)
    if buf.size == 0:
        raise CorruptImageError(f"compressed image ({fmt or 'no format'}) has no data")
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise CorruptImageError(
            f"cannot decode compressed image ({fmt or 'no format'}): {err}"
        ) from err
    if bgr is None or bgr.size == 0:
        raise CorruptImageError(
            f"cannot decode compressed image ({fmt or 'no format'}, {buf.size} bytes): "
            "corrupt or not JPEG/PNG"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_compressed(
    rgb: np.ndarray, fmt: str = "jpeg", quality: int = 95
) -> tuple[np.ndarray, str]:
    """Encode H x W x 3 uint8 RGB as JPEG or PNG for a ``sensor_msgs/CompressedImage``.

    Returns ``(data, format)`` where ``format`` follows compressed_image_transport
    (``"rgb8; jpeg compressed bgr8"``), which image_transport republishers understand.
    """
    image = check_rgb(rgb)
    kind = fmt.strip().lower()
    if kind in ("jpeg", "jpg"):
        ext, params, kind = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)], "jpeg"
    elif kind == "png":
        ext, params = ".png", []
    else:
        raise ImageFormatError(f"cannot compress to {fmt!r}; use 'jpeg' or 'png'")
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageFormatError(f"OpenCV failed to encode a {image.shape} image as {kind}")
    return encoded.reshape(-1), f"rgb8; {kind} compressed bgr8"


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate the Frame image convention (H x W x 3 uint8, non-empty)."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageFormatError(
            f"expected an H x W x 3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageFormatError(f"image has zero size {image.shape}")
    return image


def _as_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A flat uint8 view of any buffer (rosbags gives ndarrays, rclpy array.array or bytes)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
