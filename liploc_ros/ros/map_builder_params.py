"""The map builder node's parameters: one typed, validated config (see config/map_builder.yaml).

Every ROS parameter of ``map_builder_node`` is a field here, described where it is declared
(what ``ros2 param describe`` shows); the ``build`` section is
:class:`liploc_ros.mapping.MapBuildConfig` (``build.keyframe_distance``, ...; shared with
``liploc build-map``) and the ``bag`` section is
:class:`liploc_ros.datasets.rosbag_reader.BagReaderConfig` (offline mode only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liploc_ros.config_fields import Choice, check_bounds, param, set_choice
from liploc_ros.datasets.rosbag_reader import BagReaderConfig
from liploc_ros.errors import ConfigError
from liploc_ros.mapping.config import MapBuildConfig
from liploc_ros.ros.pose_sources import extrinsic_matrix

__all__ = ["MapBuilderNodeConfig", "PoseType", "Reliability"]


class PoseType(Choice):
    """The message type of ``pose_topic``."""

    #: learned from the ROS graph once a publisher appears
    AUTO = "auto"
    ODOMETRY = "odometry"
    POSE_STAMPED = "pose_stamped"
    POSE_WITH_COVARIANCE_STAMPED = "pose_with_covariance_stamped"


class Reliability(Choice):
    """QoS reliability of the scan and pose subscriptions."""

    #: matches every publisher
    BEST_EFFORT = "best_effort"
    #: loses nothing, but only matches reliable publishers
    RELIABLE = "reliable"


@dataclass(frozen=True)
class MapBuilderNodeConfig:
    """Everything the node reads at start-up (parameters are read-only afterwards)."""

    model: str = param(
        "",
        "liploc model file (.safetensors, or an authors' .pth) whose LiDAR encoder embeds the"
        " scans; a relative path not found is looked up in the package's share folder",
    )
    map_path: str = param(
        "", "map database file to write (on the save service, ~/save and at shutdown)"
    )
    bag_path: str = param(
        "",
        "offline mode when set: build the map from this bag (ROS 1 .bag, ROS 2 folder, a bare"
        " .mcap without metadata.yaml or a folder of them; read with the bag.* settings), save"
        " it and exit",
    )
    points_topic: str = param(
        "points", "sensor_msgs/PointCloud2 topic of the LiDAR scans (live mode)"
    )
    pose_topic: str = param(
        "odom",
        "nav_msgs/Odometry, geometry_msgs/PoseStamped or PoseWithCovarianceStamped topic with"
        " the pose of the vehicle or LiDAR (when tf is not used)",
    )
    pose_type: PoseType = param(
        PoseType.AUTO, "message type of pose_topic; auto: learned from the ROS graph"
    )
    use_tf: bool = param(
        True,
        "look poses up in tf (build.frame_id <- the cloud's frame) when tf2_ros is installed;"
        " otherwise, or when false, use pose_topic",
    )
    base_to_lidar: tuple[float, ...] = param(
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        "pose of the LiDAR in the frame whose poses pose_topic gives (e.g. base_link): [x, y,"
        " z, roll, pitch, yaw] (m, rad) or a row-major 4x4 (16 values); zeros: the poses are"
        " the LiDAR's. Not used with tf (tf has the chain)",
    )
    pose_timeout: float = param(
        1.0, "seconds a scan waits for its pose before it is dropped", gt=0
    )
    max_pose_gap: float = param(
        1.0, "largest gap (s) between two pose samples to interpolate across", gt=0
    )
    reliability: Reliability = param(
        Reliability.BEST_EFFORT,
        "QoS reliability of the scan and pose subscriptions: best_effort matches every"
        " publisher, reliable loses nothing but only matches reliable publishers",
    )
    queue_depth: int = param(10, "QoS history depth of the scan subscription", ge=1)
    max_pending_scans: int = param(
        100, "scans queued for the encoder or their pose before the oldest is dropped", ge=1
    )
    save_on_shutdown: bool = param(
        True, "save the map to map_path when the node stops (SIGINT, SIGTERM)"
    )
    progress_period: float = param(
        5.0, "seconds between progress log lines (entries, scans/s)", gt=0
    )
    autostart: bool = param(
        True,
        "configure and activate at start-up (a plain node); false: wait for a lifecycle"
        " manager's transitions",
    )
    build: MapBuildConfig = field(default_factory=MapBuildConfig)
    bag: BagReaderConfig = field(default_factory=BagReaderConfig)

    def __post_init__(self) -> None:
        check_bounds(self)
        set_choice(self, "pose_type", PoseType)
        set_choice(self, "reliability", Reliability)
        if not self.model.strip():
            raise ConfigError("model must name a liploc model file (.safetensors), got ''")
        if not self.map_path.strip():
            raise ConfigError("map_path must name the map file to write, got ''")
        for name in ("points_topic", "pose_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty")
        try:
            extrinsic_matrix(self.base_to_lidar)
        except ConfigError as err:
            raise ConfigError(f"base_to_lidar {list(self.base_to_lidar)}: {err}") from err
