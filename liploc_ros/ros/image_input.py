"""Camera messages -> RGB for the localizer, with bad input sorted into named causes.

The causes name what an operator has to fix (the driver's encoding, its step, a broken
JPEG stream), so that the node can throttle its warnings per cause and count them.
Decoding itself is :func:`liploc_ros.ros.conversions.image_to_rgb`. A raw Image whose
buffer holds more than ``step x height`` bytes decodes from its first ``step x height``
bytes (drivers that pad their buffers are common and the picture is intact);
:func:`trailing_bytes` tells the node how many were ignored, so that it can say so once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage

from liploc_ros.datasets.images import CorruptImageError
from liploc_ros.errors import LiplocError
from liploc_ros.ros.conversions import image_to_rgb

__all__ = [
    "BAD_BUFFER_SIZE",
    "CAUSES",
    "CORRUPT_COMPRESSED",
    "UNSUPPORTED_ENCODING",
    "WRONG_STEP",
    "ZERO_SIZE",
    "BadImageError",
    "decode_image",
    "trailing_bytes",
]

UNSUPPORTED_ENCODING = "unsupported encoding"
ZERO_SIZE = "zero-size image"
WRONG_STEP = "wrong step"
BAD_BUFFER_SIZE = "data size does not match step x height"
CORRUPT_COMPRESSED = "corrupt compressed image"
CAUSES = (UNSUPPORTED_ENCODING, ZERO_SIZE, WRONG_STEP, BAD_BUFFER_SIZE, CORRUPT_COMPRESSED)


class BadImageError(LiplocError):
    """A camera message the localizer cannot use; ``cause`` is one of :data:`CAUSES`."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


def decode_image(msg: Any) -> np.ndarray:
    """Image / CompressedImage -> H x W x 3 uint8 RGB, or :class:`BadImageError`."""
    try:
        return image_to_rgb(msg)
    except LiplocError as err:
        raise BadImageError(_cause(msg, err), str(err)) from err


def trailing_bytes(msg: Any) -> int:
    """Bytes after the ``step x height`` an Image needs (0 for CompressedImage and for a
    buffer of the right size or shorter)."""
    if isinstance(msg, CompressedImage):
        return 0
    return max(0, len(msg.data) - int(msg.step) * int(msg.height))


def _cause(msg: Any, err: LiplocError) -> str:
    if isinstance(msg, CompressedImage):
        return CORRUPT_COMPRESSED if isinstance(err, CorruptImageError) else UNSUPPORTED_ENCODING
    if not isinstance(err, CorruptImageError):
        return UNSUPPORTED_ENCODING
    if msg.height == 0 or msg.width == 0:
        return ZERO_SIZE
    # data that holds exactly `height` rows of `step` bytes: the step itself cannot be right
    # for the width and encoding; otherwise the buffer is what disagrees with the header
    return WRONG_STEP if len(msg.data) == msg.step * msg.height else BAD_BUFFER_SIZE
