"""Per-frame files shared by the KITTI layouts: PNG camera images and velodyne ``.bin`` scans.

On disk an image is a PNG written by OpenCV, so its channels are BGR; in memory the package
uses RGB (see :mod:`liploc_ros.datasets.base`). A scan is raw little-endian float32 rows of
(x, y, z, reflectance), 16 bytes a point, with no header.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from liploc_ros.datasets.base import Calibration, FrameSource, IndexedSource
from liploc_ros.datasets.default_rig import writer_calibration
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import write_bytes_atomic

log = logging.getLogger(__name__)

POINT_BYTES = 16
_POINT_DTYPE = np.dtype("<f4")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def list_frame_files(folder: Path, suffix: str, digits: int, what: str) -> list[Path]:
    """The ``<digits>-digit>.<suffix>`` files of ``folder``, sorted by their number.

    Other files (hidden temporaries, READMEs) are ignored; a missing folder is an error.
    """
    if not folder.is_dir():
        raise DatasetError(f"missing {what} folder: {folder}")
    pattern = re.compile(rf"\d{{{digits}}}{re.escape(suffix)}")
    try:
        names = [e.name for e in os.scandir(folder) if pattern.fullmatch(e.name) and e.is_file()]
    except OSError as err:
        raise DatasetError(f"cannot list {what} folder {folder}: {err}") from err
    names.sort()
    return [folder / n for n in names]


def check_scan_sizes(paths: list[Path]) -> None:
    """Fail early (at construction, before a long run) on truncated scans; costs one stat each."""
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as err:
            raise DatasetError(f"cannot read scan {path}: {err}") from err
        if size % POINT_BYTES:
            raise DatasetError(
                f"{path}: size {size} bytes is not a multiple of {POINT_BYTES} "
                "(float32 x, y, z, reflectance): truncated or not a velodyne scan"
            )


def read_scan(path: Path) -> np.ndarray:
    """N x 4 float32 points; rows with a NaN or infinite value are dropped."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read scan {path}: {err}") from err
    if len(data) % POINT_BYTES:
        raise DatasetError(
            f"{path}: size {len(data)} bytes is not a multiple of {POINT_BYTES} "
            "(float32 x, y, z, reflectance): truncated or not a velodyne scan"
        )
    points = np.frombuffer(data, dtype=_POINT_DTYPE).reshape(-1, 4).astype(np.float32)
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        log.debug("%s: dropped %d non-finite point(s)", path, int((~finite).sum()))
        points = np.ascontiguousarray(points[finite])
    return points


def read_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB from a colour or grey PNG (grey is copied to three channels)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    bgr = None
    if data:
        try:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as err:
            raise DatasetError(f"{path}: corrupt or unreadable image: {err}") from err
    if bgr is None:
        raise DatasetError(f"{path}: corrupt or unreadable image ({len(data)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header, reading 24 bytes instead of decoding the image."""
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG image (bad header)")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def check_image(image: np.ndarray | None, where: str) -> np.ndarray:
    """The writers' input check: H x W x 3 uint8 RGB."""
    if image is None:
        raise DatasetError(f"{where}: frame has no image; this layout needs one per frame")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DatasetError(
            f"{where}: expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}"
        )
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB ``image`` as a lossless PNG (BGR on disk, as OpenCV and KITTI have it)."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DatasetError(f"{path}: OpenCV could not encode the image as PNG")
    write_bytes_atomic(path, buffer.tobytes())


def check_points(points: np.ndarray | None, where: str) -> np.ndarray:
    """The writers' input check: N x 4 (x, y, z, intensity), any float type."""
    if points is None:
        raise DatasetError(f"{where}: frame has no points; this layout needs one scan per frame")
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4 or points.dtype.kind not in "fiu":
        raise DatasetError(
            f"{where}: expected N x 4 points (x, y, z, intensity), got "
            f"{points.dtype} {points.shape}"
        )
    return points


def write_scan(path: Path, points: np.ndarray) -> None:
    """Write N x 4 points as little-endian float32 rows."""
    write_bytes_atomic(path, np.ascontiguousarray(points, dtype=_POINT_DTYPE).tobytes())


@dataclass
class WrittenFrames:
    """What a writer needs after the frame loop to write the layout's text files."""

    calibration: Calibration
    stamps: list[float]
    #: T_map_lidar per frame, None where the source had no pose
    poses: list[np.ndarray | None]

    def __len__(self) -> int:
        return len(self.stamps)


def write_frame_files(
    source: FrameSource,
    image_path: Callable[[int], Path],
    scan_path: Callable[[int], Path],
    *,
    progress: bool,
    desc: str,
    on_calibration: Callable[[Calibration], None] | None = None,
) -> WrittenFrames:
    """Stream ``source`` once, writing frame ``i``'s image and scan to the given paths.

    The calibration is resolved at the first frame (the source's, checked against the image
    size, or the default rig), so a mismatch fails before thousands of files are written;
    ``on_calibration`` is then called with it, before the first file is written. Every image
    must have the first one's size.
    """
    total = len(source) if isinstance(source, IndexedSource) else None
    calibration: Calibration | None = None
    stamps: list[float] = []
    poses: list[np.ndarray | None] = []
    frames = tqdm(source.iter_frames(), total=total, desc=desc, unit="frame", disable=not progress)
    for i, frame in enumerate(frames):
        where = f"{source.name or type(source).__name__} frame {i}"
        image = check_image(frame.image, where)
        points = check_points(frame.points, where)
        size = (image.shape[1], image.shape[0])
        if calibration is None:
            calibration = writer_calibration(source.calibration, size, desc)
            if on_calibration is not None:
                on_calibration(calibration)
        elif size != tuple(calibration.image_size):
            raise DatasetError(
                f"{where}: image is {size[0]}x{size[1]}, the first was "
                f"{calibration.image_size[0]}x{calibration.image_size[1]}"
            )
        stamp = float(frame.stamp)
        if not np.isfinite(stamp):
            raise DatasetError(f"{where}: stamp {frame.stamp!r} is not finite")
        write_image(image_path(i), image)
        write_scan(scan_path(i), points)
        stamps.append(stamp)
        poses.append(_check_pose(frame.pose, where))
    if calibration is None:
        raise DatasetError(f"{desc}: the source {source.name!r} has no frames")
    return WrittenFrames(calibration, stamps, poses)


def _check_pose(pose: np.ndarray | None, where: str) -> np.ndarray | None:
    if pose is None:
        return None
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise DatasetError(f"{where}: pose must be 4 x 4, got {pose.shape}")
    if np.isnan(pose).all():
        return None  # the NaN-filled "no pose" rows of IndexedSource.poses
    if not np.isfinite(pose).all():
        raise DatasetError(f"{where}: pose holds non-finite values")
    return pose


def remove_stale_frames(folder: Path, suffix: str, digits: int, keep: int) -> int:
    """Delete numbered frame files ``>= keep`` left by an earlier, longer write."""
    removed = 0
    for path in list_frame_files(folder, suffix, digits, "frame"):
        if int(path.name[:digits]) >= keep:
            path.unlink()
            removed += 1
    if removed:
        log.info("%s: removed %d stale %s file(s) of an earlier write", folder, removed, suffix)
    return removed
