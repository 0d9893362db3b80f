"""The localizer node's parameters: one typed, validated config (see config/localizer.yaml).

Every ROS parameter of ``localizer_node`` is a field here, described where it is declared
(what ``ros2 param describe`` shows); the ``localizer`` section is
:class:`liploc_ros.localization.LocalizerConfig` (``localizer.top_k``, ...) and the
``sequence`` section :class:`~liploc_ros.localization.sequence_config.SequenceConfig`
(``sequence.particles``, ...), both shared with ``liploc localize --config``, so that the
node and the offline tool decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liploc_ros.config_fields import check_bounds, param, set_choice
from liploc_ros.datasets.rosbag_config import PoseSource
from liploc_ros.device import Precision
from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.mode_registry import DEFAULT_MODE, check_mode, mode_names
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.ros.pose_sources import extrinsic_matrix

__all__ = [
    "DEFAULT_BASE_TO_LIDAR",
    "DYNAMIC_PARAMETERS",
    "ODOMETRY_SOURCES",
    "LocalizerNodeConfig",
]

#: base_link -> LiDAR mount of the KITTI car (1.73 m above the ground, no rotation): the same
#: default as :data:`liploc_ros.datasets.rosbag_writer.DEFAULT_T_BASE_LIDAR`
DEFAULT_BASE_TO_LIDAR = (0.0, 0.0, 1.73, 0.0, 0.0, 0.0)

#: where sequence mode's odometry comes from (auto: tf where tf2_ros is installed, else topic)
ODOMETRY_SOURCES: tuple[str, ...] = PoseSource.values()


#: parameters that may change while the node runs (``ros2 param set``): gates, targets,
#: rates and publish flags, checked by the same validation as at start-up. The rest (model,
#: map, backend, topics, frames, particles) is read when the node configures.
DYNAMIC_PARAMETERS = frozenset(
    {
        "publish_odom",
        "publish_markers",
        "publish_initialpose",
        "initialpose_min_confidence",
        "initialpose_in",
        "diagnostics_period",
        "warn_period",
        "max_stamp_offset",
        "odom_timeout",
        "transform_tolerance",
        "localizer.top_k",
        "localizer.target_precision",
        "localizer.max_spread_m",
        "localizer.agree_radius_m",
        "localizer.min_position_std_m",
        "localizer.min_height_std_m",
        "localizer.min_yaw_std_deg",
        "localizer.min_roll_pitch_std_deg",
        "sequence.target_precision",
        "sequence.keep_probability",
        "sequence.max_position_std_m",
        "sequence.extra_position_std_m",
        "sequence.extra_yaw_std_deg",
        "sequence.inject_fraction",
        "sequence.kidnap_probability",
        "sequence.inject_position_std_m",
        "sequence.inject_yaw_std_deg",
        "sequence.alpha1",
        "sequence.alpha2",
        "sequence.alpha3",
        "sequence.alpha4",
        "sequence.lateral_noise",
        "sequence.min_step_noise_m",
        "sequence.min_step_yaw_noise_deg",
    }
)


@dataclass(frozen=True)
class LocalizerNodeConfig:
    """Everything the node reads when it configures; :data:`DYNAMIC_PARAMETERS` may change
    while it runs."""

    model: str = param(
        "",
        "liploc model file (.safetensors, or an authors' .pth) whose camera encoder embeds the"
        " images; must be the model the map was built with; a relative path not found is"
        " looked up in the package's share folder",
    )
    map_path: str = param("", "map database file (liploc build-map / map_builder_node)")
    mode: str = param(
        DEFAULT_MODE,
        lambda: (
            f"localizer mode, one of {', '.join(mode_names())}: sequence tracks with odometry"
            " and retrieval (Monte Carlo localization; a pose only while tracking); single"
            " localizes every frame alone"
        ),
    )
    device: str = param("auto", "compute device: auto, cpu, cuda or cuda:N")
    precision: Precision = param(
        Precision.AUTO,
        "auto (with backend auto: the fastest verified precision here; else fp16 on CUDA, bf16"
        " on a CPU with bf16 units, int8 where a verified INT8 model is cached, else fp32),"
        " fp32, fp16, bf16 or int8 (liploc export --precision int8 makes one)",
    )
    backend: str = param(
        "auto",
        "inference runtime of the camera encoder: auto (the fastest verified configuration"
        " for this model on this machine: measured on first use, a few seconds, then cached;"
        " the choice and its latency are logged and on /diagnostics), torch, openvino or"
        " onnxruntime (pip extras liploc_ros[openvino] / [onnx]; converted once, cached"
        " beside the model)",
    )
    threads: int = param(0, "torch CPU threads; 0: torch's default (all cores)", ge=0)
    image_topics: tuple[str, ...] = param(
        ("/kitti/camera_color_left/image_raw",),
        "camera topics, one or several; each sensor_msgs/Image or CompressedImage (the type is"
        " learned from the ROS graph once a publisher appears)",
    )
    map_frame: str = param(
        "", "frame of the published poses; empty: the map file's frame_id (usually map)"
    )
    base_frame: str = param(
        "base_link",
        "the frame whose pose is published (child_frame_id of ~/odom; tf: the frame"
        " odom -> base_frame is looked up for)",
    )
    odom_frame: str = param(
        "odom",
        "odometry frame: publish_tf broadcasts map_frame -> odom_frame; sequence mode's tf"
        " odometry is odom_frame -> base_frame",
    )
    base_to_lidar: tuple[float, ...] = param(
        DEFAULT_BASE_TO_LIDAR,
        "pose of the map's LiDAR in base_frame: [x, y, z, roll, pitch, yaw] (m, rad) or a"
        " row-major 4x4; the published pose is T_map_base = T_map_lidar @ inv(T_base_lidar)",
    )
    publish_odom: bool = param(
        False, "also publish nav_msgs/Odometry on ~/odom (pose only, twist unknown)"
    )
    publish_markers: bool = param(
        True,
        "publish RViz markers on ~/markers: the map's route (once, latched), the current match"
        " with lines to its top-k entries, and in sequence mode the filter's particles (at"
        " most every 0.5 s)",
    )
    publish_tf: bool = param(
        False,
        "broadcast map_frame -> odom_frame from each fix and tf's odom_frame -> base_frame"
        " (needs tf2_ros)",
    )
    transform_tolerance: float = param(
        0.1,
        "s the broadcast map -> odom is post-dated by (as AMCL does), so that lookups slightly"
        " newer than the last fix succeed",
        ge=0,
    )
    publish_initialpose: bool = param(
        False,
        "publish the first fix with confidence >= initialpose_min_confidence on"
        " initialpose_topic (nav2 AMCL's initial pose); ~/publish_initialpose sends another",
    )
    initialpose_topic: str = param(
        "/initialpose", "topic of the initial pose (PoseWithCovarianceStamped)"
    )
    initialpose_min_confidence: float = param(
        0.8, "confidence (0..1) a fix needs to be sent as initial pose", ge=0, le=1
    )
    initialpose_in: bool = param(
        True,
        "seed sequence mode's filter from an operator's pose on initialpose_in_topic (RViz"
        " '2D Pose Estimate', nav2): particles drawn from its mean and covariance, as AMCL"
        " does; the filter still finds itself if the pose was wrong",
    )
    initialpose_in_topic: str = param(
        "/initialpose",
        "topic of the operator's initial pose (PoseWithCovarianceStamped, in map_frame or"
        " a frame tf can transform)",
    )
    diagnostics_period: float = param(1.0, "s between /diagnostics messages", gt=0)
    discovery_period: float = param(
        1.0, "s between looks at the ROS graph for image topics not yet subscribed", gt=0
    )
    warn_period: float = param(
        5.0,
        "s: each kind of bad input is warned about at most once per period (with a count of"
        " the ones left out)",
        gt=0,
    )
    max_stamp_offset: float = param(
        5.0,
        "s: outside use_sim_time, a frame stamped further than this from the node's clock is"
        " localized but warned about and kept out of the latency figures; 0: no check",
        ge=0,
    )
    odometry_source: PoseSource = param(
        PoseSource.AUTO,
        "sequence mode's odometry: tf (odom_frame -> base_frame at the image stamp, needs"
        " tf2_ros), topic (odom_topic), none (random walk), auto (tf where tf2_ros is"
        " installed, else topic)",
    )
    odom_topic: str = param(
        "/odom",
        "nav_msgs/Odometry of base_frame in odom_frame (odometry_source topic), interpolated"
        " to each image's stamp",
    )
    odom_timeout: float = param(
        0.5,
        "s: an odometry gap longer than this is not interpolated across, and an image newer"
        " than the newest odometry by more than this has none (random walk)",
        gt=0,
    )
    autostart: bool = param(
        True,
        "configure and activate at start-up (a plain node); false: wait for a lifecycle"
        " manager's transitions",
    )
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.model.strip():
            raise ConfigError("model must name the liploc model file (.safetensors), got ''")
        if not self.map_path.strip():
            raise ConfigError("map_path must name the map database file, got ''")
        self._check_choices()
        if not self.image_topics or any(not t.strip() for t in self.image_topics):
            raise ConfigError(
                f"image_topics must list one or more topic names, got {list(self.image_topics)}"
            )
        if len(set(self.image_topics)) != len(self.image_topics):
            raise ConfigError(f"image_topics lists a topic twice: {list(self.image_topics)}")
        for name in ("base_frame", "odom_frame", "initialpose_topic", "initialpose_in_topic",
                     "odom_topic"):  # fmt: skip
            if not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty")
        try:
            extrinsic_matrix(self.base_to_lidar)
        except ConfigError as err:
            raise ConfigError(f"base_to_lidar {list(self.base_to_lidar)}: {err}") from err

    def _check_choices(self) -> None:
        """The string choices, as members (a config built in Python may hold plain strings)."""
        check_mode(self.mode)
        set_choice(self, "precision", Precision)
        set_choice(self, "odometry_source", PoseSource)
