"""Settings of the sequence localizer (Monte Carlo localization over x, y, yaw).

One set of values serves every map and model that scores like the demo model; the defaults
were calibrated on synthetic towns that the benchmark does not score (see
:mod:`liploc_ros.localization.measurement` for the measurement model's calibration). The
same fields are the ``sequence`` section of the localizer node's parameters and of
``liploc localize --config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liploc_ros.config_fields import param
from liploc_ros.errors import ConfigError


@dataclass(frozen=True)
class SequenceConfig:
    """Particles, motion noise, measurement model, re-localization and the fix gate."""

    particles: int = param(
        1000,
        "particles of the filter (cost per frame linear in it, independent of the map's size)",
    )
    seed: int = param(0, "seed of the filter's random draws (a run is reproducible)")
    # --- motion model: AMCL's differential-drive alphas (nav2 amcl's convention)
    alpha1: float = param(
        0.02, "motion noise: rotation from rotation (rad^2 / rad^2; nav2 amcl's alpha1)"
    )
    alpha2: float = param(0.0002, "motion noise: rotation from translation (rad^2 / m^2)")
    alpha3: float = param(0.01, "motion noise: translation from translation (m^2 / m^2)")
    alpha4: float = param(0.01, "motion noise: translation from rotation (m^2 / rad^2)")
    lateral_noise: float = param(
        0.05, "sideways noise per step, relative to the step length (plus min_step_noise_m)"
    )
    min_step_noise_m: float = param(
        0.05,
        "position noise (m) added every step, so that the particles never collapse to a point",
    )
    min_step_yaw_noise_deg: float = param(0.3, "heading noise (deg) added every step")
    # --- without odometry: a bounded random walk along each particle's heading
    max_speed_mps: float = param(
        20.0, "without odometry: the largest speed (m/s) a random-walk step assumes"
    )
    random_walk_yaw_deg: float = param(4.0, "without odometry: heading random walk (deg per step)")
    random_walk_lateral_m: float = param(
        0.3, "without odometry: sideways random walk (m per step)"
    )
    max_gap_s: float = param(
        1.0, "without odometry: the longest gap (s) between frames a random-walk step covers"
    )
    # --- measurement model
    entry_radius_m: float = param(
        5.0, "a particle is explained by the map entries within this ground distance (m)"
    )
    heading_tolerance_deg: float = param(
        45.0, "... whose heading is within this angle (deg) of the particle's (the crop's field)"
    )
    neighbours: int = param(8, "map entries considered per particle (nearest first)")
    position_std_m: float = param(
        2.0,
        "std (m) of the measurement's position term: an entry d metres away counts"
        " d^2 / (2 std^2) less",
    )
    gain: float = param(
        0.5, "log-likelihood per unit of z-score (the calibrated gain, tempered for correlation)"
    )
    z_break_even: float = param(
        0.7, "z-score at which a place explains the frame no better than 'somewhere else'"
    )
    # --- global (re-)localization: augmented MCL with sensor resetting
    inject_top_k: int = param(
        10, "retrieval depth: new particles are injected at the frame's top-k matches"
    )
    inject_fraction: float = param(
        0.05, "particles injected every frame at the top-k matches, as a share of particles"
    )
    kidnap_probability: float = param(
        0.001, "prior probability per frame that the vehicle is elsewhere than odometry says"
    )
    inject_max_fraction: float = param(
        0.3, "largest such probability when the likelihood falls (augmented MCL)"
    )
    alpha_slow: float = param(
        0.01, "averaging rate of the long-term mean likelihood (Thrun's alpha_slow)"
    )
    alpha_fast: float = param(
        0.1, "averaging rate of the short-term mean likelihood (Thrun's alpha_fast; > alpha_slow)"
    )
    inject_position_std_m: float = param(2.0, "spread (m) of injected particles around a match")
    inject_yaw_std_deg: float = param(
        8.0, "heading spread (deg) of injected particles around a match"
    )
    # --- pose, covariance and the fix gate
    mode_radius_m: float = param(
        10.0, "particles within this distance (m) of the mode's centre form it"
    )
    mode_yaw_deg: float = param(45.0, "... and within this heading (deg)")
    min_mode_weight: float = param(
        0.7,
        "fix only when the mode holds at least this share of the weight; also the"
        " estimate's confidence",
    )
    min_support: float = param(
        0.2,
        "fix only while the mode's averaged support (z-score units above break-even) is at"
        " least this",
    )
    lock_support: float = param(
        0.5,
        "support needed to take a track up (initializing or lost): a first fix, or one after"
        " a loss, asks for more evidence than keeping a track does",
    )
    support_rate: float = param(0.2, "averaging rate of the support (per frame)")
    max_position_std_m: float = param(
        5.0, "fix only when the mode's position std (m) is at most this"
    )
    min_position_std_m: float = param(0.5, "floor of the published x and y standard deviation (m)")
    min_yaw_std_deg: float = param(1.0, "floor of the published yaw standard deviation (deg)")

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_ranges()
        self._check_relations()

    def _check_counts(self) -> None:
        for name in ("particles", "neighbours", "inject_top_k", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"sequence.{name} must be an integer, got {value!r}")
        if self.particles < 10:
            raise ConfigError(f"sequence.particles must be at least 10, got {self.particles}")
        if self.neighbours < 1 or self.inject_top_k < 1:
            raise ConfigError("sequence.neighbours and sequence.inject_top_k must be >= 1")

    def _check_ranges(self) -> None:
        positive = (
            "max_speed_mps", "max_gap_s", "entry_radius_m", "heading_tolerance_deg",
            "position_std_m", "gain", "inject_position_std_m", "inject_yaw_std_deg",
            "mode_radius_m", "mode_yaw_deg", "max_position_std_m", "min_position_std_m",
            "min_yaw_std_deg", "alpha_slow", "alpha_fast", "support_rate",
        )  # fmt: skip
        non_negative = (
            "alpha1", "alpha2", "alpha3", "alpha4", "lateral_noise", "min_step_noise_m",
            "min_step_yaw_noise_deg", "random_walk_yaw_deg", "random_walk_lateral_m",
        )  # fmt: skip
        for names, low, text in ((positive, False, "> 0"), (non_negative, True, ">= 0")):
            for name in names:
                value = getattr(self, name)
                good = isinstance(value, (int, float)) and math.isfinite(value)
                if not good or not (value >= 0 if low else value > 0):
                    raise ConfigError(f"sequence.{name} must be a finite number {text}, "
                                      f"got {value!r}")  # fmt: skip
        shares = ("inject_fraction", "kidnap_probability", "inject_max_fraction",
                  "min_mode_weight", "alpha_slow", "alpha_fast", "support_rate")  # fmt: skip
        for name in shares:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"sequence.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("z_break_even", "min_support", "lock_support"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"sequence.{name} must be finite")
        if self.heading_tolerance_deg > 180 or self.mode_yaw_deg > 180:
            raise ConfigError("sequence angles must be at most 180 deg")

    def _check_relations(self) -> None:
        if self.kidnap_probability > self.inject_max_fraction:
            raise ConfigError("sequence.kidnap_probability exceeds inject_max_fraction")
        if self.lock_support < self.min_support:
            raise ConfigError("sequence.lock_support must be at least min_support")
        if self.alpha_slow >= self.alpha_fast:
            raise ConfigError("sequence.alpha_slow must be smaller than alpha_fast")


#: the defaults, shared (configs are frozen)
DEFAULT_SEQUENCE_CONFIG = SequenceConfig()
