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

from liploc_ros.config_fields import check_bounds, param


@dataclass(frozen=True)
class LocalizerConfig:
    """Retrieval depth, the fix gate and the covariance floors of the single-frame mode.

    What a score means comes from the map's calibration
    (:mod:`~liploc_ros.localization.calibration`), never from a threshold here: the gate is
    a target probability, the rest is geometry.
    """

    top_k: int = param(
        5, "map keyframes (places) retrieved per frame and used for the estimate", ge=1
    )
    target_precision: float = param(
        0.99,
        "fix only when the calibrated probability that the best place is where the frame was"
        " taken (among every entry of the map) is at least this",
        ge=0.5,
        lt=1,
    )
    max_spread_m: float = param(
        20.0,
        "weighted RMS ground distance (m) of the top-k from the best match above this -> no"
        " fix ('matches disagree')",
        gt=0,
    )
    agree_radius_m: float = param(
        10.0,
        "matches within this ground distance (m) of the best one are the same place (their"
        " probability adds up)",
        gt=0,
    )
    min_position_std_m: float = param(
        5.0,
        "floor of the x and y standard deviation (m): the granularity of place recognition",
        gt=0,
    )
    min_height_std_m: float = param(1.0, "floor of the z standard deviation (m)", gt=0)
    min_yaw_std_deg: float = param(5.0, "floor of the yaw standard deviation (deg)", gt=0)
    min_roll_pitch_std_deg: float = param(
        2.0, "floor of the roll and pitch standard deviations (deg)", gt=0
    )

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def std_floors(self) -> tuple[float, float, float, float, float, float]:
        """Standard deviation floors over x y z roll pitch yaw (m, rad)."""
        rp = math.radians(self.min_roll_pitch_std_deg)
        xy = self.min_position_std_m
        return (xy, xy, self.min_height_std_m, rp, rp, math.radians(self.min_yaw_std_deg))


#: the defaults, shared (configs are frozen)
DEFAULT_CONFIG = LocalizerConfig()
