"""The localizer node's parameters: one typed, validated config (see config/localizer.yaml).

Every ROS parameter of ``localizer_node`` is a field here; the ``localizer`` section is
:class:`liploc_ros.localization.LocalizerConfig` (``localizer.top_k``, ...), shared with
``liploc localize --config``, so that the node and the offline tool decide alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.ros.pose_sources import extrinsic_matrix

__all__ = ["DEFAULT_BASE_TO_LIDAR", "DESCRIPTIONS", "LocalizerNodeConfig"]

#: base_link -> LiDAR mount of the KITTI car (1.73 m above the ground, no rotation): the same
#: default as :data:`liploc_ros.datasets.rosbag_writer.DEFAULT_T_BASE_LIDAR`
DEFAULT_BASE_TO_LIDAR = (0.0, 0.0, 1.73, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LocalizerNodeConfig:
    """Everything the node reads at start-up (parameters are read-only afterwards)."""

    model: str = ""
    map_path: str = ""
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    image_topics: tuple[str, ...] = ("/kitti/camera_color_left/image_raw",)
    map_frame: str = ""
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    base_to_lidar: tuple[float, ...] = DEFAULT_BASE_TO_LIDAR
    publish_odom: bool = False
    publish_markers: bool = True
    publish_tf: bool = False
    transform_tolerance: float = 0.1
    publish_initialpose: bool = False
    initialpose_topic: str = "/initialpose"
    initialpose_min_confidence: float = 0.8
    diagnostics_period: float = 1.0
    discovery_period: float = 1.0
    warn_period: float = 5.0
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model must name the liploc model file (.safetensors), got ''")
        if not self.map_path.strip():
            raise ConfigError("map_path must name the map database file, got ''")
        if not self.image_topics or any(not t.strip() for t in self.image_topics):
            raise ConfigError(
                f"image_topics must list one or more topic names, got {list(self.image_topics)}"
            )
        if len(set(self.image_topics)) != len(self.image_topics):
            raise ConfigError(f"image_topics lists a topic twice: {list(self.image_topics)}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: torch's default), got {self.threads}")
        for name in ("base_frame", "odom_frame", "initialpose_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty")
        for name in ("diagnostics_period", "discovery_period", "warn_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        if not (math.isfinite(self.transform_tolerance) and self.transform_tolerance >= 0):
            raise ConfigError(
                f"transform_tolerance must be >= 0 seconds, got {self.transform_tolerance}"
            )
        if not 0.0 <= self.initialpose_min_confidence <= 1.0:
            raise ConfigError(
                "initialpose_min_confidence must be in [0, 1], got "
                f"{self.initialpose_min_confidence}"
            )
        try:
            extrinsic_matrix(self.base_to_lidar)
        except ConfigError as err:
            raise ConfigError(f"base_to_lidar {list(self.base_to_lidar)}: {err}") from err


_LOC = "localizer."

#: what `ros2 param describe localizer_node <name>` says
DESCRIPTIONS: dict[str, str] = {
    "model": "liploc model file (.safetensors, or an authors' .pth) whose camera encoder"
    " embeds the images; must be the model the map was built with",
    "map_path": "map database file (liploc build-map / map_builder_node)",
    "device": "compute device: auto, cpu, cuda or cuda:N",
    "precision": "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16",
    "threads": "torch CPU threads; 0: torch's default (all cores)",
    "image_topics": "camera topics, one or several; each sensor_msgs/Image or CompressedImage"
    " (the type is learned from the ROS graph once a publisher appears)",
    "map_frame": "frame of the published poses; empty: the map file's frame_id (usually map)",
    "base_frame": "the frame whose pose is published (child_frame_id of ~/odom; tf: the"
    " frame odom -> base_frame is looked up for)",
    "odom_frame": "odometry frame: publish_tf broadcasts map_frame -> odom_frame",
    "base_to_lidar": "pose of the map's LiDAR in base_frame: [x, y, z, roll, pitch, yaw]"
    " (m, rad) or a row-major 4x4; the published pose is T_map_base = T_map_lidar @"
    " inv(T_base_lidar)",
    "publish_odom": "also publish nav_msgs/Odometry on ~/odom (pose only, twist unknown)",
    "publish_markers": "publish RViz markers on ~/markers: the map's route (once, latched) and"
    " the current match with lines to its top-k entries",
    "publish_tf": "broadcast map_frame -> odom_frame from each fix and tf's odom_frame ->"
    " base_frame (needs tf2_ros)",
    "transform_tolerance": "s the broadcast map -> odom is post-dated by (as AMCL does), so"
    " that lookups slightly newer than the last fix succeed",
    "publish_initialpose": "publish the first fix with confidence >= initialpose_min_confidence"
    " on initialpose_topic (nav2 AMCL's initial pose); ~/publish_initialpose sends another",
    "initialpose_topic": "topic of the initial pose (PoseWithCovarianceStamped)",
    "initialpose_min_confidence": "confidence (0..1) a fix needs to be sent as initial pose",
    "diagnostics_period": "s between /diagnostics messages",
    "discovery_period": "s between looks at the ROS graph for image topics not yet subscribed",
    "warn_period": "s: each kind of bad input is warned about at most once per period (with"
    " a count of the ones left out)",
    _LOC + "top_k": "map entries retrieved per frame and used for the estimate",
    _LOC + "min_score": "best score below this -> no fix; unset: no score gate",
    _LOC + "max_spread_m": "weighted RMS ground distance (m) of the top-k from the best match"
    " above this -> no fix",
    _LOC + "min_confidence": "confidence below this -> no fix; 0 disables the rule",
    _LOC + "temperature": "softmax temperature of the score weighting",
    _LOC
    + "temperature_mode": "cosine (temperature in cosine units) or absolute (raw score units)",
    _LOC + "agree_radius_m": "matches within this ground distance (m) of the best agree with it",
    _LOC + "min_position_std_m": "floor of the x and y standard deviation (m)",
    _LOC + "min_height_std_m": "floor of the z standard deviation (m)",
    _LOC + "min_yaw_std_deg": "floor of the yaw standard deviation (deg)",
    _LOC + "min_roll_pitch_std_deg": "floor of the roll and pitch standard deviations (deg)",
}
