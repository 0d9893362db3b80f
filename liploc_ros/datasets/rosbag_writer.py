"""Any :class:`~liploc_ros.datasets.base.FrameSource` -> a ROS 2 bag (mcap or sqlite3).

Written with the pure-Python ``rosbags`` library, so it runs without a ROS install; the bag
plays with ``ros2 bag play`` on Jazzy and newer (rosbag2 metadata version 9).

What a frame becomes (topic names are :class:`BagTopics`, defaults from kitti2bag):

- ``/kitti/camera_color_left/image_raw`` sensor_msgs/Image (rgb8 or bgr8), or with
  ``image_encoding="jpeg"`` sensor_msgs/CompressedImage on ``<image topic>/compressed``
  (the image_transport naming);
- ``/kitti/camera_color_left/camera_info`` sensor_msgs/CameraInfo from the source's calibration
  (no distortion: the sources yield rectified images);
- ``/kitti/velo/pointcloud`` sensor_msgs/PointCloud2, fields x y z intensity float32;
- ``/ground_truth/odom`` nav_msgs/Odometry, the ground truth (header map, child base_link),
  from the frame's ``T_map_lidar`` and the base_link -> LiDAR mount ``T_base_lidar``;
- ``/tf_static`` (latched) base_link -> velo_link (``T_base_lidar``) and velo_link ->
  camera_color_left (``calibration.T_lidar_camera``, the camera optical frame);
- ``/tf``, in one of two layouts, since base_link can have only one parent:

  - the source has odometry (``Frame.odometry``, e.g. the synthetic world's simulated wheel
    odometry) and ``odometry=True``: odom -> base_link from ``Frame.odometry``, and the same
    drifting pose on ``/odom`` nav_msgs/Odometry (header odom, child base_link, twist from
    the motion since the previous frame, in base_link). This is what a robot records, and what
    a localizer that broadcasts map -> odom expects; the truth is only on
    ``/ground_truth/odom``. The bag's metadata says where the odometry came from
    (``custom_data`` ``liploc_ros.odometry``: simulated / recorded, and the error model);
  - no odometry: map -> base_link, the ground truth (the layout of kitti2bag and kitti2mcap).

  The layout is chosen once per bag: from an indexed source's ``odometry``, else from the
  first frame.

Every message of a frame is stamped (header and bag time) with the frame's stamp plus
``time_offset``. The bag is written into a hidden sibling directory and renamed into place
only once complete, so an interrupted run never leaves a half-written bag at ``path``.

This module stages and installs the bag; :mod:`~liploc_ros.datasets.rosbag_topics` holds the
names and the mount, :mod:`~liploc_ros.datasets.rosbag_emitter` builds the messages.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Generator
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from liploc_ros.datasets.base import FrameSource, IndexedSource
from liploc_ros.datasets.rosbag_emitter import FrameEmitter
from liploc_ros.datasets.rosbag_topics import DEFAULT_T_BASE_LIDAR, BagTopics, check_transform
from liploc_ros.errors import ConfigError, DatasetError, LiplocError

__all__ = ["DEFAULT_T_BASE_LIDAR", "BagTopics", "write_bag"]

log = logging.getLogger(__name__)

Storage = Literal["mcap", "sqlite3"]
ImageEncoding = Literal["rgb8", "bgr8", "jpeg"]


def write_bag(
    source: FrameSource,
    path: str | Path,
    *,
    storage: Storage = "mcap",
    image_encoding: ImageEncoding = "rgb8",
    topics: BagTopics | None = None,
    progress: bool = True,
    overwrite: bool = False,
    T_base_lidar: np.ndarray | None = None,
    time_offset: float = 0.0,
    jpeg_quality: int = 95,
    limit: int | None = None,
    odometry: bool = True,
) -> Path:
    """Write ``source``'s frames to a ROS 2 bag directory at ``path``; returns that path.

    ``overwrite=True`` replaces an existing bag (a directory holding metadata.yaml) only after
    the new one is complete; anything else at ``path`` is never deleted. ``limit`` stops after
    that many frames. ``odometry=False`` leaves the source's odometry out (tf then carries the
    truth, map -> base_link). Raises :class:`DatasetError` for a frame the bag cannot hold.
    """
    topics = topics or BagTopics()
    _check_arguments(storage, image_encoding, limit, jpeg_quality)
    mount = check_transform(
        DEFAULT_T_BASE_LIDAR if T_base_lidar is None else T_base_lidar, "T_base_lidar"
    )

    final = Path(path).expanduser().absolute()
    _check_destination(final, overwrite)
    from rosbags.rosbag2 import StoragePlugin, Writer

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
        )
    except OSError as err:
        raise DatasetError(f"cannot write bag {final}: {err}") from err
    try:
        # the staging bag already has the final name, so its storage file (<name>.mcap) does too
        tmp_bag = staging / final.name
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(tmp_bag, version=9, storage_plugin=plugin) as writer:
            if source.name:
                writer.set_custom_data("liploc_ros.source", str(source.name))
            layout: bool | None = None if odometry else False  # None: the first frame tells
            if odometry and isinstance(source, IndexedSource):
                layout = source.odometry is not None
            emitter = FrameEmitter(
                writer, topics, image_encoding, source.calibration, mount, odometry=layout
            )
            emitter.jpeg_quality = jpeg_quality
            total = len(source) if isinstance(source, IndexedSource) else None
            if limit is not None:
                total = limit if total is None else min(total, limit)
            stream = source.iter_frames()
            try:
                for frame in tqdm(
                    islice(stream, limit),
                    total=total,
                    disable=not progress,
                    unit="frame",
                    desc=f"writing {final.name}",
                ):
                    emitter.write_frame(frame, time_offset)
            finally:
                if isinstance(stream, Generator):  # release a streaming source's files now
                    stream.close()
            if emitter.frames == 0:
                log.warning("%s: the source yielded no frame; the bag is empty", source.name)
        _install(tmp_bag, final, staging, overwrite)
    except LiplocError:
        raise
    except Exception as err:
        if isinstance(err, OSError) or type(err).__module__.startswith("rosbags"):
            raise DatasetError(f"cannot write bag {final}: {err}") from err
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %d frames to %s", emitter.frames, final)
    return final


def _check_arguments(storage: str, image_encoding: str, limit: int | None, quality: int) -> None:
    if storage not in ("mcap", "sqlite3"):
        raise ConfigError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if image_encoding not in ("rgb8", "bgr8", "jpeg"):
        raise ConfigError(f"image_encoding must be rgb8, bgr8 or jpeg, got {image_encoding!r}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if not 1 <= quality <= 100:
        raise ConfigError(f"jpeg_quality must be in 1..100, got {quality}")


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / "metadata.yaml").is_file()


def _check_destination(final: Path, overwrite: bool) -> None:
    if not (final.exists() or final.is_symlink()):
        return
    if not overwrite:
        raise DatasetError(
            f"{final} already exists; pass overwrite=True (liploc: --overwrite) to replace it"
        )
    if not _is_bag_dir(final):
        raise DatasetError(
            f"{final} exists and is not a ROS 2 bag directory (no metadata.yaml); "
            "refusing to replace it"
        )


def _install(tmp_bag: Path, final: Path, staging: Path, overwrite: bool) -> None:
    """Move the finished bag into place, swapping out an old one only at the last moment."""
    _check_destination(final, overwrite)
    if final.exists():
        previous = staging / ".previous"
        os.rename(final, previous)
        try:
            os.rename(tmp_bag, final)
        except OSError:
            os.rename(previous, final)
            raise
    else:
        os.rename(tmp_bag, final)
