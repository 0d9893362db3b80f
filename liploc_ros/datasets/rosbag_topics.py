"""The names and the LiDAR mount of the bags that
:func:`~liploc_ros.datasets.rosbag_writer.write_bag` writes.

:class:`BagTopics` holds the topic names and frame ids (kitti2bag's by default);
:data:`DEFAULT_T_BASE_LIDAR` is the base_link -> LiDAR mount used when the caller gives none.
Both are checked here, before any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liploc_ros.errors import ConfigError

__all__ = ["DEFAULT_T_BASE_LIDAR", "BagTopics", "check_transform"]

#: base_link -> LiDAR mount used when the caller gives none: the KITTI Velodyne HDL-64E sits
#: 1.73 m above the ground, and REP-105's base_link lies on the ground below the vehicle's
#: centre; no rotation (the LiDAR's x forward, y left, z up match base_link's).
DEFAULT_T_BASE_LIDAR: np.ndarray = np.array(
    [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.73], [0, 0, 0, 1.0]]
)
DEFAULT_T_BASE_LIDAR.setflags(write=False)


@dataclass(frozen=True)
class BagTopics:
    """Topic names and frame ids of a written bag (defaults: kitti2bag's, plus a pose topic)."""

    image: str = "/kitti/camera_color_left/image_raw"
    camera_info: str = "/kitti/camera_color_left/camera_info"
    points: str = "/kitti/velo/pointcloud"
    odometry: str = "/ground_truth/odom"
    #: the drifting odometry (written only when the source has one)
    odom: str = "/odom"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    map_frame: str = "map"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    lidar_frame: str = "velo_link"
    camera_frame: str = "camera_color_left"

    def __post_init__(self) -> None:
        topics = ("image", "camera_info", "points", "odometry", "odom", "tf", "tf_static")
        frames = ("map_frame", "odom_frame", "base_frame", "lidar_frame", "camera_frame")
        for name in topics:
            value = getattr(self, name)
            if not value.startswith("/") or value.endswith("/") or " " in value:
                raise ConfigError(f"topics.{name}: {value!r} is not an absolute topic name")
        for name in frames:
            value = getattr(self, name)
            if not value or value.startswith("/") or " " in value:
                raise ConfigError(f"topics.{name}: {value!r} is not a valid frame id")
        names = [getattr(self, n) for n in topics]
        if len(set(names)) != len(names):
            raise ConfigError(f"topics: the topic names must differ, got {names}")
        ids = [getattr(self, n) for n in frames]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"topics: the frame ids must differ, got {ids}")

    def image_topic(self, image_encoding: str) -> str:
        """The topic images go to: ``<image>/compressed`` for JPEG (image_transport naming)."""
        return f"{self.image}/compressed" if image_encoding == "jpeg" else self.image


def check_transform(T: np.ndarray, name: str) -> np.ndarray:
    """``T`` as a float64 4 x 4 rigid transform; a :class:`ConfigError` naming ``name`` else."""
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ConfigError(f"{name} must be a finite 4 x 4 transform, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ConfigError(f"{name} is not a rigid transform:\n{T}")
    return T
