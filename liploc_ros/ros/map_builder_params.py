"""The map builder node's parameters: one typed, validated config (see config/map_builder.yaml).

Every ROS parameter of ``map_builder_node`` is a field here; the ``build`` section is
:class:`liploc_ros.mapping.MapBuildConfig` (``build.keyframe_distance``, ...; shared with
``liploc build-map``) and the ``bag`` section is
:class:`liploc_ros.datasets.rosbag_reader.BagReaderConfig` (offline mode only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from liploc_ros.datasets.rosbag_reader import BagReaderConfig
from liploc_ros.errors import ConfigError
from liploc_ros.mapping.config import MapBuildConfig
from liploc_ros.ros.pose_sources import extrinsic_matrix

__all__ = ["DESCRIPTIONS", "MapBuilderNodeConfig", "PoseType"]

PoseType = Literal["auto", "odometry", "pose_stamped", "pose_with_covariance_stamped"]


@dataclass(frozen=True)
class MapBuilderNodeConfig:
    """Everything the node reads at start-up (parameters are read-only afterwards)."""

    model: str = ""
    map_path: str = ""
    bag_path: str = ""
    points_topic: str = "points"
    pose_topic: str = "odom"
    pose_type: PoseType = "auto"
    use_tf: bool = True
    base_to_lidar: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    pose_timeout: float = 1.0
    max_pose_gap: float = 1.0
    reliability: Literal["best_effort", "reliable"] = "best_effort"
    queue_depth: int = 10
    max_pending_scans: int = 100
    save_on_shutdown: bool = True
    progress_period: float = 5.0
    build: MapBuildConfig = field(default_factory=MapBuildConfig)
    bag: BagReaderConfig = field(default_factory=BagReaderConfig)

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model must name a liploc model file (.safetensors), got ''")
        if not self.map_path.strip():
            raise ConfigError("map_path must name the map file to write, got ''")
        for name in ("pose_timeout", "max_pose_gap", "progress_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        for name in ("queue_depth", "max_pending_scans"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("points_topic", "pose_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty")
        try:
            extrinsic_matrix(self.base_to_lidar)
        except ConfigError as err:
            raise ConfigError(f"base_to_lidar {list(self.base_to_lidar)}: {err}") from err


_BUILD = "build."
_BAG = "bag."

#: what `ros2 param describe map_builder_node <name>` says
DESCRIPTIONS: dict[str, str] = {
    "model": "liploc model file (.safetensors, or an authors' .pth) whose LiDAR encoder"
    " embeds the scans; a relative path not found is looked up in the package's share folder",
    "map_path": "map database file to write (on the save service, ~/save and at shutdown)",
    "bag_path": "offline mode when set: build the map from this bag (ROS 1 .bag, ROS 2 folder,"
    " a bare .mcap without metadata.yaml or a folder of them; read with the bag.* settings),"
    " save it and exit",
    "points_topic": "sensor_msgs/PointCloud2 topic of the LiDAR scans (live mode)",
    "pose_topic": "nav_msgs/Odometry, geometry_msgs/PoseStamped or PoseWithCovarianceStamped"
    " topic with the pose of the vehicle or LiDAR (when tf is not used)",
    "pose_type": "message type of pose_topic; auto: learned from the ROS graph",
    "use_tf": "look poses up in tf (build.frame_id <- the cloud's frame) when tf2_ros is"
    " installed; otherwise, or when false, use pose_topic",
    "base_to_lidar": "pose of the LiDAR in the frame whose poses pose_topic gives (e.g."
    " base_link): [x, y, z, roll, pitch, yaw] (m, rad) or a row-major 4x4 (16 values); zeros:"
    " the poses are the LiDAR's. Not used with tf (tf has the chain)",
    "pose_timeout": "seconds a scan waits for its pose before it is dropped",
    "max_pose_gap": "largest gap (s) between two pose samples to interpolate across",
    "reliability": "QoS reliability of the scan and pose subscriptions: best_effort matches"
    " every publisher, reliable loses nothing but only matches reliable publishers",
    "queue_depth": "QoS history depth of the scan subscription",
    "max_pending_scans": "scans queued for the encoder or their pose before the oldest is dropped",
    "save_on_shutdown": "save the map to map_path when the node stops (SIGINT, SIGTERM)",
    "progress_period": "seconds between progress log lines (entries, scans/s)",
    _BUILD + "keyframe_distance": "metres from the last kept scan before another is kept;"
    " 0 keeps every scan",
    _BUILD + "batch_size": "scans embedded together",
    _BUILD + "device": "compute device: auto, cpu, cuda or cuda:N",
    _BUILD + "precision": "auto (fp16 on CUDA, bf16 on a CPU with bf16 units, else fp32),"
    " fp32, fp16 or bf16",
    _BUILD + "backend": "inference runtime of the LiDAR encoder: torch, openvino or onnxruntime",
    _BUILD + "dtype": "storage type of the embeddings in the map",
    _BUILD + "index": "search index stored with the map: auto, flat, ivf or hnsw",
    _BUILD + "workers": "offline mode: threads preprocessing scans while the model encodes",
    _BUILD + "frame_id": "the map frame: poses are looked up in it (tf) and stored as in it",
    _BAG + "points_topic": "offline mode: PointCloud2 topic in the bag (unset: found by type)",
    _BAG + "pose_source": "offline mode: where poses come from: auto, tf, topic or none",
    _BAG + "pose_topic": "offline mode: pose topic in the bag (unset: the only one)",
    _BAG + "map_frame": "offline mode: frame of the poses (unset: the tf tree's root)",
    _BAG + "lidar_frame": "offline mode: LiDAR frame (unset: the clouds' frame_id)",
}
