"""The localizer node's parameters: one typed, validated config (see config/localizer.yaml).

Every ROS parameter of ``localizer_node`` is a field here; the ``localizer`` section is
:class:`liploc_ros.localization.LocalizerConfig` (``localizer.top_k``, ...) and the
``sequence`` section :class:`~liploc_ros.localization.sequence_config.SequenceConfig`
(``sequence.particles``, ...), both shared with ``liploc localize --config``, so that the
node and the offline tool decide alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.localization.tracking import MODES
from liploc_ros.ros.pose_sources import extrinsic_matrix

__all__ = ["DEFAULT_BASE_TO_LIDAR", "DESCRIPTIONS", "ODOMETRY_SOURCES", "LocalizerNodeConfig"]

#: base_link -> LiDAR mount of the KITTI car (1.73 m above the ground, no rotation): the same
#: default as :data:`liploc_ros.datasets.rosbag_writer.DEFAULT_T_BASE_LIDAR`
DEFAULT_BASE_TO_LIDAR = (0.0, 0.0, 1.73, 0.0, 0.0, 0.0)

#: where sequence mode's odometry comes from (auto: tf where tf2_ros is installed, else topic)
ODOMETRY_SOURCES = ("auto", "tf", "topic", "none")


#: parameters in seconds -> their bound: ">" positive, ">=" zero allowed
_SECONDS = {
    "diagnostics_period": ">",
    "discovery_period": ">",
    "warn_period": ">",
    "transform_tolerance": ">=",
    "max_stamp_offset": ">=",  # 0: no check
    "odom_timeout": ">",
}


@dataclass(frozen=True)
class LocalizerNodeConfig:
    """Everything the node reads at start-up (parameters are read-only afterwards)."""

    model: str = ""
    map_path: str = ""
    mode: Literal["sequence", "single"] = "sequence"
    device: str = "auto"
    precision: str = "auto"
    backend: str = "torch"
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
    max_stamp_offset: float = 5.0
    odometry_source: Literal["auto", "tf", "topic", "none"] = "auto"
    odom_topic: str = "/odom"
    odom_timeout: float = 0.5
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)

    def __post_init__(self) -> None:
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
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: torch's default), got {self.threads}")
        for name in ("base_frame", "odom_frame", "initialpose_topic", "odom_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{name} must not be empty")
        for name, least in _SECONDS.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > 0 if least == ">" else value >= 0)):
                what = "a positive number of seconds" if least == ">" else ">= 0 seconds"
                raise ConfigError(f"{name} must be {what}, got {value}")
        if not 0.0 <= self.initialpose_min_confidence <= 1.0:
            raise ConfigError(
                "initialpose_min_confidence must be in [0, 1], got "
                f"{self.initialpose_min_confidence}"
            )
        try:
            extrinsic_matrix(self.base_to_lidar)
        except ConfigError as err:
            raise ConfigError(f"base_to_lidar {list(self.base_to_lidar)}: {err}") from err

    def _check_choices(self) -> None:
        """The string choices (a Literal is not checked by the dataclass itself)."""
        for name, allowed in (("mode", MODES), ("odometry_source", ODOMETRY_SOURCES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )


_LOC = "localizer."
_SEQ = "sequence."

#: ``sequence.*``: the filter's settings (SequenceConfig's own comments, for `ros2 param describe`)
SEQUENCE_DESCRIPTIONS: dict[str, str] = {
    "particles": "particles of the filter (cost per frame linear in it, independent of the"
    " map's size)",
    "seed": "seed of the filter's random draws (a run is reproducible)",
    "alpha1": "motion noise: rotation from rotation (rad^2 / rad^2; nav2 amcl's alpha1)",
    "alpha2": "motion noise: rotation from translation (rad^2 / m^2)",
    "alpha3": "motion noise: translation from translation (m^2 / m^2)",
    "alpha4": "motion noise: translation from rotation (m^2 / rad^2)",
    "lateral_noise": "sideways noise per step, relative to the step length (plus"
    " min_step_noise_m)",
    "min_step_noise_m": "position noise (m) added every step, so particles never collapse",
    "min_step_yaw_noise_deg": "heading noise (deg) added every step",
    "max_speed_mps": "without odometry: the largest speed (m/s) a random-walk step assumes",
    "random_walk_yaw_deg": "without odometry: heading random walk (deg per step)",
    "random_walk_lateral_m": "without odometry: sideways random walk (m per step)",
    "max_gap_s": "without odometry: the longest gap (s) between frames a random-walk step covers",
    "entry_radius_m": "a particle is explained by the map entries within this ground distance (m)",
    "heading_tolerance_deg": "... whose heading is within this angle (deg) of the particle's",
    "neighbours": "map entries considered per particle (nearest first)",
    "position_std_m": "std (m) of the measurement's position term",
    "gain": "log-likelihood per unit of z-score (calibrated, tempered for correlation)",
    "z_break_even": "z-score at which a place explains the frame no better than elsewhere",
    "inject_top_k": "retrieval depth: new particles are injected at the top-k matches",
    "inject_fraction": "particles injected every frame, as a share of particles",
    "kidnap_probability": "prior probability per frame that the vehicle is somewhere else",
    "inject_max_fraction": "largest such probability when the likelihood falls (augmented MCL)",
    "alpha_slow": "averaging rate of the long-term mean likelihood (Thrun's alpha_slow)",
    "alpha_fast": "averaging rate of the short-term mean likelihood (> alpha_slow)",
    "inject_position_std_m": "spread (m) of injected particles around a match",
    "inject_yaw_std_deg": "heading spread (deg) of injected particles around a match",
    "mode_radius_m": "particles within this distance (m) of the mode's centre form it",
    "mode_yaw_deg": "... and within this heading (deg)",
    "min_mode_weight": "fix only when the mode holds at least this share of the weight;"
    " also the estimate's confidence",
    "min_support": "fix only while the mode's averaged support (z-score above break-even)"
    " is at least this",
    "lock_support": "support needed to take a track up (first fix, or after a loss)",
    "support_rate": "averaging rate of the support (per frame)",
    "max_position_std_m": "fix only when the mode's position std (m) is at most this",
    "min_position_std_m": "floor of the published x and y standard deviation (m)",
    "min_yaw_std_deg": "floor of the published yaw standard deviation (deg)",
}


#: what `ros2 param describe localizer_node <name>` says
DESCRIPTIONS: dict[str, str] = {
    "model": "liploc model file (.safetensors, or an authors' .pth) whose camera encoder"
    " embeds the images; must be the model the map was built with; a relative path not"
    " found is looked up in the package's share folder",
    "map_path": "map database file (liploc build-map / map_builder_node)",
    "mode": "sequence: track with odometry and retrieval (Monte Carlo localization; a pose"
    " only while tracking); single: every frame alone",
    "device": "compute device: auto, cpu, cuda or cuda:N",
    "precision": "auto (fp16 on CUDA, bf16 on a CPU with bf16 units, else fp32), fp32, fp16"
    " or bf16",
    "backend": "inference runtime of the camera encoder: torch, openvino or onnxruntime"
    " (pip extras liploc_ros[openvino] / [onnx]; converted once, cached beside the model)",
    "threads": "torch CPU threads; 0: torch's default (all cores)",
    "image_topics": "camera topics, one or several; each sensor_msgs/Image or CompressedImage"
    " (the type is learned from the ROS graph once a publisher appears)",
    "map_frame": "frame of the published poses; empty: the map file's frame_id (usually map)",
    "base_frame": "the frame whose pose is published (child_frame_id of ~/odom; tf: the"
    " frame odom -> base_frame is looked up for)",
    "odom_frame": "odometry frame: publish_tf broadcasts map_frame -> odom_frame; sequence"
    " mode's tf odometry is odom_frame -> base_frame",
    "base_to_lidar": "pose of the map's LiDAR in base_frame: [x, y, z, roll, pitch, yaw]"
    " (m, rad) or a row-major 4x4; the published pose is T_map_base = T_map_lidar @"
    " inv(T_base_lidar)",
    "publish_odom": "also publish nav_msgs/Odometry on ~/odom (pose only, twist unknown)",
    "publish_markers": "publish RViz markers on ~/markers: the map's route (once, latched),"
    " the current match with lines to its top-k entries, and in sequence mode the filter's"
    " particles (at most every 0.5 s)",
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
    "max_stamp_offset": "s: outside use_sim_time, a frame stamped further than this from the"
    " node's clock is localized but warned about and kept out of the latency figures; 0: no"
    " check",
    "odometry_source": "sequence mode's odometry: tf (odom_frame -> base_frame at the image"
    " stamp, needs tf2_ros), topic (odom_topic), none (random walk), auto (tf where tf2_ros"
    " is installed, else topic)",
    "odom_topic": "nav_msgs/Odometry of base_frame in odom_frame (odometry_source topic),"
    " interpolated to each image's stamp",
    "odom_timeout": "s: an odometry gap longer than this is not interpolated across, and"
    " an image newer than the newest odometry by more than this has none (random walk)",
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
    **{_SEQ + name: text for name, text in SEQUENCE_DESCRIPTIONS.items()},
}
