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
from typing import Literal

from liploc_ros.errors import ConfigError


@dataclass(frozen=True)
class LocalizerConfig:
    """Retrieval depth, the no-fix rules, the score weighting and the covariance floors."""

    #: map entries retrieved per frame and used for the estimate
    top_k: int = 5
    #: best score below this -> no fix ("low score"); None: no gate (raw dot products of
    #: unnormalised models have no fixed scale: pick it from a run of `liploc localize`)
    min_score: float | None = None
    #: weighted RMS ground distance (m) of the top-k from the best match above this -> no fix
    #: ("matches disagree")
    max_spread_m: float = 20.0
    #: confidence below this -> no fix ("ambiguous"); 0 disables the rule
    min_confidence: float = 0.0
    #: softmax temperature of the score weighting w_i ~ exp((s_i - s_best) / tau)
    temperature: float = 0.05
    #: "cosine": tau = temperature * |query| * |best entry| (score gaps in cosine units, the
    #: same for every model, normalised or not); "absolute": tau = temperature in raw score
    #: units
    temperature_mode: Literal["cosine", "absolute"] = "cosine"
    #: matches within this ground distance (m) of the best one count as agreeing with it
    #: (confidence = their weight)
    agree_radius_m: float = 10.0
    #: floor of the x and y standard deviation (m): the granularity of place recognition
    min_position_std_m: float = 5.0
    #: floor of the z standard deviation (m)
    min_height_std_m: float = 1.0
    #: floor of the yaw standard deviation (deg)
    min_yaw_std_deg: float = 5.0
    #: floor of the roll and pitch standard deviations (deg)
    min_roll_pitch_std_deg: float = 2.0

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
        if self.temperature_mode not in ("cosine", "absolute"):
            raise ConfigError(
                f"temperature_mode must be 'cosine' or 'absolute', got {self.temperature_mode!r}"
            )

    @property
    def std_floors(self) -> tuple[float, float, float, float, float, float]:
        """Standard deviation floors over x y z roll pitch yaw (m, rad)."""
        rp = math.radians(self.min_roll_pitch_std_deg)
        xy = self.min_position_std_m
        return (xy, xy, self.min_height_std_m, rp, rp, math.radians(self.min_yaw_std_deg))


#: the defaults, shared (configs are frozen)
DEFAULT_CONFIG = LocalizerConfig()
