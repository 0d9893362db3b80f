"""How a camera frame's top-k map matches become a pose, a covariance and a yes/no.

The same fields are the ``localizer`` section of the localizer node's parameters and of
``liploc localize --config``. None of them is on a model's score scale: the fix gate is a
target probability, computed from the map's calibration; ``max_spread_m`` refuses a pose
when the best matches point to places further apart than place recognition can be trusted
to tell apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liploc_ros.config_fields import Choice, param
from liploc_ros.errors import ConfigError


class LocalizerMode(Choice):
    """How frames are localized (``mode`` of the node, ``liploc localize`` and ``liploc eval``).

    Here rather than in :mod:`~liploc_ros.localization.factory`, so that the node's
    parameters need not import the model and map code.
    """

    #: the frames in time order through the sequence filter with odometry (a pose only
    #: while tracking)
    SEQUENCE = "sequence"
    #: every frame alone
    SINGLE = "single"


@dataclass(frozen=True)
class LocalizerConfig:
    """Retrieval depth, the fix gate and the covariance floors of the single-frame mode.

    What a score means comes from the map's calibration
    (:mod:`~liploc_ros.localization.calibration`), never from a threshold here: the gate is
    a target probability, the rest is geometry.
    """

    top_k: int = param(5, "map keyframes (places) retrieved per frame and used for the estimate")
    target_precision: float = param(
        0.99,
        "fix only when the calibrated probability that the best place is where the frame was"
        " taken (among every entry of the map) is at least this",
    )
    max_spread_m: float = param(
        20.0,
        "weighted RMS ground distance (m) of the top-k from the best match above this -> no"
        " fix ('matches disagree')",
    )
    agree_radius_m: float = param(
        10.0,
        "matches within this ground distance (m) of the best one are the same place (their"
        " probability adds up)",
    )
    min_position_std_m: float = param(
        5.0, "floor of the x and y standard deviation (m): the granularity of place recognition"
    )
    min_height_std_m: float = param(1.0, "floor of the z standard deviation (m)")
    min_yaw_std_deg: float = param(5.0, "floor of the yaw standard deviation (deg)")
    min_roll_pitch_std_deg: float = param(
        2.0, "floor of the roll and pitch standard deviations (deg)"
    )

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ConfigError(f"top_k must be a positive integer, got {self.top_k!r}")
        if not (math.isfinite(self.target_precision) and 0.5 <= self.target_precision < 1.0):
            raise ConfigError(f"target_precision must be in [0.5, 1), got {self.target_precision}")
        positive = (
            "max_spread_m",
            "agree_radius_m",
            "min_position_std_m",
            "min_height_std_m",
            "min_yaw_std_deg",
            "min_roll_pitch_std_deg",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value}")

    @property
    def std_floors(self) -> tuple[float, float, float, float, float, float]:
        """Standard deviation floors over x y z roll pitch yaw (m, rad)."""
        rp = math.radians(self.min_roll_pitch_std_deg)
        xy = self.min_position_std_m
        return (xy, xy, self.min_height_std_m, rp, rp, math.radians(self.min_yaw_std_deg))


#: the defaults, shared (configs are frozen)
DEFAULT_CONFIG = LocalizerConfig()
