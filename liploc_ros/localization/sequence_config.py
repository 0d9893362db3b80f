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

from liploc_ros.errors import ConfigError


@dataclass(frozen=True)
class SequenceConfig:
    """Particles, motion noise, measurement model, re-localization and the fix gate."""

    #: particles of the filter (cost per frame is linear in it, independent of the map size)
    particles: int = 1000
    #: seed of the filter's random draws (a run is reproducible)
    seed: int = 0
    # --- motion model: AMCL's differential-drive alphas (nav2 amcl's convention):
    #: rotation noise from rotation (rad^2 / rad^2)
    alpha1: float = 0.02
    #: rotation noise from translation (rad^2 / m^2)
    alpha2: float = 0.0002
    #: translation noise from translation (m^2 / m^2)
    alpha3: float = 0.01
    #: translation noise from rotation (m^2 / rad^2)
    alpha4: float = 0.01
    #: sideways noise per step, relative to the step length, plus ``min_step_noise_m``
    lateral_noise: float = 0.05
    #: position noise (m) added every step so that the particles never collapse to one point
    min_step_noise_m: float = 0.05
    #: heading noise (deg) added every step
    min_step_yaw_noise_deg: float = 0.3
    # --- without odometry: a bounded random walk along each particle's heading
    #: largest speed (m/s) a frame's step may assume
    max_speed_mps: float = 20.0
    #: heading random walk (deg per step)
    random_walk_yaw_deg: float = 4.0
    #: sideways random walk (m per step)
    random_walk_lateral_m: float = 0.3
    #: the longest gap (s) between frames that a random-walk step covers
    max_gap_s: float = 1.0
    # --- measurement model
    #: a particle is explained by the map entries within this ground distance (m)
    entry_radius_m: float = 5.0
    #: ... whose heading is within this angle (deg) of the particle's (the crop's field)
    heading_tolerance_deg: float = 45.0
    #: map entries considered per particle (nearest first)
    neighbours: int = 8
    #: std (m) of the position term: an entry d metres away counts d^2 / (2 std^2) less
    position_std_m: float = 2.0
    #: log-likelihood per unit of z-score (the calibrated gain, tempered for correlation)
    gain: float = 0.5
    #: the z-score at which a place explains the frame no better than "somewhere else"
    z_break_even: float = 0.7
    # --- global (re-)localization: augmented MCL with sensor resetting
    #: retrieval depth: the top-k matches are where new particles are injected
    inject_top_k: int = 10
    #: particles added every frame at the top-k matches, as a share of ``particles``
    inject_fraction: float = 0.05
    #: prior probability per frame that the vehicle is somewhere else than the odometry says
    kidnap_probability: float = 0.001
    #: largest such probability when the likelihood falls (augmented MCL)
    inject_max_fraction: float = 0.3
    #: averaging rates of the long- and short-term mean likelihood (Thrun's alpha_slow/fast)
    alpha_slow: float = 0.01
    alpha_fast: float = 0.1
    #: spread of injected particles around a match (m, deg)
    inject_position_std_m: float = 2.0
    inject_yaw_std_deg: float = 8.0
    # --- pose, covariance and the fix gate
    #: particles within this distance (m) and heading (deg) of the mode's centre form it
    mode_radius_m: float = 10.0
    mode_yaw_deg: float = 45.0
    #: fix only when the mode holds at least this share of the weight
    min_mode_weight: float = 0.7
    #: fix only while the recent support (z-score units above break-even) is at least this
    min_support: float = 0.2
    #: ... and at least this to take a track up (initializing or lost): a first fix, or
    #: one after a loss, asks for more evidence than keeping a track does
    lock_support: float = 0.5
    #: averaging rate of the support (per frame)
    support_rate: float = 0.2
    #: fix only when the mode's position std (m) is at most this
    max_position_std_m: float = 5.0
    #: floors of the published standard deviations (x, y in m; yaw in deg)
    min_position_std_m: float = 0.5
    min_yaw_std_deg: float = 1.0

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
