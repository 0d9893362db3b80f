"""Camera localization in a LiDAR map: frame -> embedding -> top-k -> pose estimate.

Usage::

    localizer = Localizer(embedder, MapDatabase.load("town.lmap"), LocalizerConfig())
    localizer.warm_up()
    estimate = localizer.localize(rgb_image, stamp)   # PoseEstimate: ok, pose, covariance, ...

From files, in either mode, as the CLI and the node assemble it
(:func:`liploc_ros.localization.factory.open_localizer`)::

    localizer = open_localizer("tiny.safetensors", "town.lmap", mode="single")

What a map's scores mean comes from its calibration
(:mod:`liploc_ros.localization.calibration`).
"""

from liploc_ros.localization.config import LocalizerConfig, LocalizerMode
from liploc_ros.localization.estimate import (
    AMBIGUOUS,
    DISAGREE,
    NO_MATCH,
    OFF_MAP,
    REASONS,
    PoseEstimate,
    estimate_pose,
    message_fields,
    pose_deltas,
    weighted_covariance,
)
from liploc_ros.localization.localizer import STAGES, FrameEstimator, Localizer

__all__ = [
    "AMBIGUOUS",
    "DISAGREE",
    "NO_MATCH",
    "OFF_MAP",
    "REASONS",
    "STAGES",
    "FrameEstimator",
    "Localizer",
    "LocalizerConfig",
    "LocalizerMode",
    "PoseEstimate",
    "estimate_pose",
    "message_fields",
    "pose_deltas",
    "weighted_covariance",
]
