"""Settings of the sequence localizer (Monte Carlo localization over x, y, yaw).

Every value here is physical (motion noise, radii, particle counts) or a target
(``target_precision``): none depends on a model's score scale, which comes from the map's
calibration (:mod:`~liploc_ros.localization.calibration`). The same fields are the
``sequence`` section of the localizer node's parameters and of ``liploc localize --config``.
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
    # --- measurement model (what the frame's score means comes from the map's calibration)
    entry_radius_m: float = param(
        12.0,
        "a particle is explained by the nearest map entry within this ground distance (m),"
        " weighed by its distance to it (the calibration's distance bands); beyond, it is off"
        " the map",
    )
    heading_tolerance_deg: float = param(
        45.0,
        "... whose heading is within this angle (deg) of the particle's (the crop's field);"
        " a particle no entry explains is off the map",
    )
    neighbours: int = param(8, "nearest map keyframes searched for that entry")
    # --- global (re-)localization: particles drawn where the frame matches, from the
    # "elsewhere" hypothesis (off the map, or at a place no particle holds)
    inject_top_k: int = param(
        10, "retrieval depth: new particles are injected at the frame's top-k matches"
    )
    inject_fraction: float = param(
        0.05, "particles injected every frame at the top-k matches, as a share of particles"
    )
    kidnap_probability: float = param(
        0.0001,
        "prior probability per metre travelled (per frame without odometry) that the vehicle"
        " is elsewhere than the odometry says: the flow into the elsewhere hypothesis",
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
    target_precision: float = param(
        0.99,
        "fix only when the dominant hypothesis holds at least this posterior probability"
        " against every other (other places, the mirror, the other lane, off the map): the"
        " share of published fixes that should be right",
    )
    keep_probability: float = param(
        0.9,
        "a track once taken up (at target_precision) is kept while its mode holds at least"
        " this posterior probability (at most target_precision); below, it is lost and must"
        " be taken up again",
    )
    max_position_std_m: float = param(
        5.0, "fix only when the mode's position std (m) is at most this"
    )
    min_position_std_m: float = param(0.5, "floor of the published x and y standard deviation (m)")
    min_yaw_std_deg: float = param(1.0, "floor of the published yaw standard deviation (deg)")

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_ranges()

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
            "inject_position_std_m", "inject_yaw_std_deg", "mode_radius_m", "mode_yaw_deg",
            "max_position_std_m", "min_position_std_m", "min_yaw_std_deg",
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
        for name in ("inject_fraction", "kidnap_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"sequence.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.5 <= self.target_precision < 1.0:
            raise ConfigError(
                f"sequence.target_precision must be in [0.5, 1), got {self.target_precision}"
            )
        if not 0.0 < self.keep_probability <= self.target_precision:
            raise ConfigError(
                f"sequence.keep_probability must be in (0, target_precision], got "
                f"{self.keep_probability}"
            )
        if self.heading_tolerance_deg > 180 or self.mode_yaw_deg > 180:
            raise ConfigError("sequence angles must be at most 180 deg")


#: the defaults, shared (configs are frozen)
DEFAULT_SEQUENCE_CONFIG = SequenceConfig()
