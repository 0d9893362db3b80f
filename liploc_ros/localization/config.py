"""How a camera frame's top-k map matches become a pose, a covariance and a yes/no.

The same fields are the ``localizer`` section of the localizer node's parameters and of
``liploc localize --config``. Every threshold has a default that leaves the decision to the
data (no score gate: raw dot products have no model-independent scale), except
``max_spread_m``, which refuses a pose when the best matches point to places further apart
than place recognition can be trusted to tell apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liploc_ros.config_fields import Choice, param, set_choice
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


class TemperatureMode(Choice):
    """The unit of ``temperature``."""

    #: tau = temperature * |query| * |best entry|: score gaps in cosine units, the same for
    #: every model, normalised or not
    COSINE = "cosine"
    #: tau = temperature, in raw score units
    ABSOLUTE = "absolute"


@dataclass(frozen=True)
class LocalizerConfig:
    """Retrieval depth, the no-fix rules, the score weighting and the covariance floors."""

    top_k: int = param(5, "map entries retrieved per frame and used for the estimate")
    min_score: float | None = param(
        None,
        "best score below this -> no fix ('low score'); unset/None: no gate (raw dot products"
        " of unnormalised models have no fixed scale: pick it from a run of liploc localize)",
    )
    max_spread_m: float = param(
        20.0,
        "weighted RMS ground distance (m) of the top-k from the best match above this -> no"
        " fix ('matches disagree')",
    )
    min_confidence: float = param(
        0.0, "confidence (0..1) below this -> no fix ('ambiguous'); 0 disables the rule"
    )
    temperature: float = param(
        0.05, "softmax temperature tau of the score weighting w_i ~ exp((s_i - s_best) / tau)"
    )
    temperature_mode: TemperatureMode = param(
        TemperatureMode.COSINE,
        "unit of temperature: cosine (tau = temperature * |query| * |best entry|: score gaps"
        " in cosine units, the same for every model) or absolute (raw score units)",
    )
    agree_radius_m: float = param(
        10.0,
        "matches within this ground distance (m) of the best one agree with it (confidence"
        " = their weight)",
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
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ConfigError(f"min_score must be a finite number or null, got {self.min_score}")
        positive = (
            "max_spread_m",
            "temperature",
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
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        set_choice(self, "temperature_mode", TemperatureMode)

    @property
    def std_floors(self) -> tuple[float, float, float, float, float, float]:
        """Standard deviation floors over x y z roll pitch yaw (m, rad)."""
        rp = math.radians(self.min_roll_pitch_std_deg)
        xy = self.min_position_std_m
        return (xy, xy, self.min_height_std_m, rp, rp, math.radians(self.min_yaw_std_deg))


#: the defaults, shared (configs are frozen)
DEFAULT_CONFIG = LocalizerConfig()
