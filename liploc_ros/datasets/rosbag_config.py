"""How to read a bag: :class:`BagReaderConfig`, the options of
:class:`~liploc_ros.datasets.rosbag_reader.RosbagSource`.

Kept apart from the reader so that the plan (:mod:`~liploc_ros.datasets.rosbag_plan`), the
odometry choice and the ROS parameters can use it without importing the streaming code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liploc_ros.config_fields import Choice, param, set_choice
from liploc_ros.datasets.tf_tree import normalize_frame
from liploc_ros.errors import ConfigError

__all__ = ["Anchor", "BagReaderConfig", "PoseSource"]


class PoseSource(Choice):
    """Where poses (or odometry) come from."""

    #: decided from what the bag (or the ROS graph) has
    AUTO = "auto"
    #: the tf chain
    TF = "tf"
    #: a pose (or odometry) topic
    TOPIC = "topic"
    #: none
    NONE = "none"


class Anchor(Choice):
    """What one frame of a bag is anchored to."""

    #: lidar if the bag has a point cloud topic, else camera
    AUTO = "auto"
    #: one frame per scan
    LIDAR = "lidar"
    #: one frame per image
    CAMERA = "camera"


@dataclass(frozen=True)
class BagReaderConfig:
    """How to read a bag; every ``None`` is discovered from the bag."""

    image_topic: str | None = param(
        None, "Image or CompressedImage topic; unset: a kitti2bag default, else the only one"
    )
    points_topic: str | None = param(
        None, "PointCloud2 topic; unset: a kitti2bag / kitti2mcap default, else the only one"
    )
    camera_info_topic: str | None = param(
        None, "CameraInfo topic; unset: the only one, or the image topic's sibling camera_info"
    )
    pose_source: PoseSource = param(
        PoseSource.AUTO,
        "where poses come from: tf (the tf chain map -> LiDAR), topic (pose_topic), none (no"
        " poses), auto (pose_topic if set, else tf when the bag has tf_topic and the LiDAR"
        " frame is known, else the only pose topic, else none)",
    )
    pose_topic: str | None = param(
        None, "Odometry / PoseStamped / PoseWithCovarianceStamped topic; unset: the only one"
    )
    map_frame: str | None = param(
        None,
        "frame the poses are expressed in; unset: the root of the LiDAR frame's tf tree (tf),"
        " or the pose topic's header.frame_id (topic)",
    )
    lidar_frame: str | None = param(None, "LiDAR frame; unset: the first cloud's frame_id")
    pose_frame: str | None = param(
        None,
        "frame whose pose pose_topic gives; unset: Odometry's child_frame_id, and for"
        " PoseStamped types the LiDAR frame itself",
    )
    anchor: Anchor = param(
        Anchor.AUTO,
        "lidar: one frame per scan; camera: one per image; auto: lidar if the bag has a point"
        " cloud topic",
    )
    tolerance: float = param(0.05, "largest |image stamp - scan stamp| (s) for a pair")
    max_pose_gap: float | None = param(
        1.0, "largest gap (s) between two pose samples to interpolate across; unset: no limit"
    )
    sync_window: float = param(
        2.0, "how far (s, in header stamps) a scan and its image may be apart in the bag's order"
    )
    strict: bool = param(False, "stop on the first corrupt message instead of skipping it")
    tf_topic: str = param("/tf", "topic of the dynamic transforms")
    tf_static_topic: str = param("/tf_static", "topic of the static transforms")
    odometry_source: PoseSource = param(
        PoseSource.AUTO,
        "where each frame's odometry comes from: tf (odom_frame -> LiDAR), topic (odom_topic),"
        " none, or auto (odom_topic if set, else tf if odom_frame is above the LiDAR, else"
        " /odom)",
    )
    odom_topic: str | None = param(
        None, "nav_msgs/Odometry topic of the odometry; unset: /odom when the bag has it"
    )
    odom_frame: str = param("odom", "the odometry frame of the tf chain (REP-105)")

    def __post_init__(self) -> None:
        for name, choice in (("pose_source", PoseSource), ("anchor", Anchor),
                             ("odometry_source", PoseSource)):  # fmt: skip
            set_choice(self, name, choice)
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"tolerance must be a finite number >= 0, got {self.tolerance}")
        if self.max_pose_gap is not None and not self.max_pose_gap > 0:
            raise ConfigError(f"max_pose_gap must be > 0 or None, got {self.max_pose_gap}")
        if not (math.isfinite(self.sync_window) and self.sync_window > 0):
            raise ConfigError(f"sync_window must be > 0, got {self.sync_window}")
        if not normalize_frame(self.odom_frame):
            raise ConfigError("odom_frame must not be empty")
        for name in (
            "image_topic",
            "points_topic",
            "camera_info_topic",
            "pose_topic",
            "odom_topic",
        ):
            value = getattr(self, name)
            if value is not None and not value.startswith("/"):
                raise ConfigError(f"{name}: {value!r} must be an absolute topic name ('/...')")
