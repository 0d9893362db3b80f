"""Camera localization in a LiDAR map: frame -> embedding -> top-k -> pose estimate.

Usage::

    localizer = Localizer(embedder, MapDatabase.load("town.lmap"), LocalizerConfig())
    localizer.warm_up()
    estimate = localizer.localize(rgb_image, stamp)   # PoseEstimate: ok, pose, covariance, ...

From files, in either mode, as the CLI and the node assemble it
(:func:`liploc_ros.localization.factory.open_localizer`)::

    localizer = open_localizer("tiny.safetensors", "town.lmap", mode="single")
"""

from liploc_ros.localization.config import LocalizerConfig, LocalizerMode, TemperatureMode
from liploc_ros.localization.estimate import (
    AMBIGUOUS,
    DISAGREE,
    LOW_SCORE,
    NO_MATCH,
    REASONS,
    PoseEstimate,
    estimate_pose,
    message_fields,
    pose_deltas,
    score_weights,
    weighted_covariance,
)
from liploc_ros.localization.localizer import STAGES, Localizer

__all__ = [
    "AMBIGUOUS",
    "DISAGREE",
    "LOW_SCORE",
    "NO_MATCH",
    "REASONS",
    "STAGES",
    "Localizer",
    "LocalizerConfig",
    "LocalizerMode",
    "PoseEstimate",
    "TemperatureMode",
    "estimate_pose",
    "message_fields",
    "pose_deltas",
    "score_weights",
    "weighted_covariance",
]
