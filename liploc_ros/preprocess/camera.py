"""Camera frame -> RGB uint8, the form every later step works on."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from liploc_ros.errors import ImageFormatError

#: channel orders an in-memory image may come in
ColorOrder = Literal["rgb", "bgr", "rgba", "bgra", "mono"]


def to_rgb(image: np.ndarray, order: ColorOrder = "rgb") -> np.ndarray:
    """H x W x 3 uint8 RGB from an RGB/BGR(A) or mono array (uint8, or uint16 scaled down)."""
    arr = np.asarray(image)
    if arr.size == 0:
        raise ImageFormatError(f"image is empty (shape {arr.shape})")
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageFormatError(f"image must be uint8 or uint16, got dtype {arr.dtype}")
    channels = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else -1)
    expected = {"rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4, "mono": 1}
    if order not in expected:
        raise ImageFormatError(f"unknown colour order {order!r}; known: {', '.join(expected)}")
    if channels != expected[order]:
        raise ImageFormatError(
            f"a {order!r} image needs {expected[order]} channel(s), got shape {arr.shape}"
        )
    if order == "rgb":
        return arr
    conversion = {
        "bgr": cv2.COLOR_BGR2RGB,
        "rgba": cv2.COLOR_RGBA2RGB,
        "bgra": cv2.COLOR_BGRA2RGB,
        "mono": cv2.COLOR_GRAY2RGB,
    }[order]
    return cv2.cvtColor(
        np.ascontiguousarray(arr.reshape(arr.shape[0], arr.shape[1], -1)), conversion
    )
