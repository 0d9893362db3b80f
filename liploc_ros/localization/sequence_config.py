"""Settings of the sequence localizer (Monte Carlo localization over x, y, yaw).

Every value here is physical (motion noise, radii, particle counts) or a target
(``target_precision``): none depends on a model's score scale, which comes from the map's
calibration (:mod:`~liploc_ros.localization.calibration`). The same fields are the
``sequence`` section of the localizer node's parameters and of ``liploc localize --config``.
"""

from __future__ import annotations

from dataclasses import dataclass

from liploc_ros.config_fields import check_bounds, param
from liploc_ros.errors import ConfigError


@dataclass(frozen=True)
class SequenceConfig:
    """Particles, motion noise, measurement model, re-localization and the fix gate."""

    particles: int = param(
        1000,
        "particles of the filter (cost per frame linear in it, independent of the map's size)",
        ge=10,
    )
    seed: int = param(0, "seed of the filter's random draws (a run is reproducible)", ge=0)
    # --- motion model: AMCL's differential-drive alphas (nav2 amcl's convention)
    alpha1: float = param(
        0.02, "motion noise: rotation from rotation (rad^2 / rad^2; nav2 amcl's alpha1)", ge=0
    )
    alpha2: float = param(0.0002, "motion noise: rotation from translation (rad^2 / m^2)", ge=0)
    alpha3: float = param(0.01, "motion noise: translation from translation (m^2 / m^2)", ge=0)
    alpha4: float = param(0.01, "motion noise: translation from rotation (m^2 / rad^2)", ge=0)
    lateral_noise: float = param(
        0.05, "sideways noise per step, relative to the step length (plus min_step_noise_m)", ge=0
    )
    min_step_noise_m: float = param(
        0.05,
        "position noise (m) added every step, so that the particles never collapse to a point",
        ge=0,
    )
    min_step_yaw_noise_deg: float = param(0.3, "heading noise (deg) added every step", ge=0)
    # --- without odometry: a bounded random walk along each particle's heading
    max_speed_mps: float = param(
        20.0, "without odometry: the largest speed (m/s) a random-walk step assumes", gt=0
    )
    random_walk_yaw_deg: float = param(
        4.0, "without odometry: heading random walk (deg per step)", ge=0
    )
    random_walk_lateral_m: float = param(
        0.3, "without odometry: sideways random walk (m per step)", ge=0
    )
    max_gap_s: float = param(
        1.0, "without odometry: the longest gap (s) between frames a random-walk step covers", gt=0
    )
    # --- measurement model (what the frame's score means comes from the map's calibration)
    entry_radius_m: float = param(
        12.0,
        "a particle is explained by the nearest map entry within this ground distance (m),"
        " weighed by its distance to it (the calibration's distance bands); beyond, it is off"
        " the map",
        gt=0,
    )
    heading_tolerance_deg: float = param(
        45.0,
        "... whose heading is within this angle (deg) of the particle's (the crop's field);"
        " a particle no entry explains is off the map",
        gt=0,
        le=180,
    )
    neighbours: int = param(8, "nearest map keyframes searched for that entry", ge=1)
    # --- global (re-)localization: particles drawn where the frame matches, from the
    # "elsewhere" hypothesis (off the map, or at a place no particle holds)
    inject_top_k: int = param(
        10, "retrieval depth: new particles are injected at the frame's top-k matches", ge=1
    )
    inject_fraction: float = param(
        0.05,
        "particles injected every frame at the top-k matches, as a share of particles",
        ge=0,
        le=1,
    )
    kidnap_probability: float = param(
        0.0001,
        "prior probability per metre travelled (per frame without odometry) that the vehicle"
        " is elsewhere than the odometry says: the flow into the elsewhere hypothesis",
        ge=0,
        le=1,
    )
    inject_position_std_m: float = param(
        2.0, "spread (m) of injected particles around a match", gt=0
    )
    inject_yaw_std_deg: float = param(
        8.0, "heading spread (deg) of injected particles around a match", gt=0
    )
    initial_pose_probability: float = param(
        0.99,
        "an operator's initial pose (node: initialpose): prior probability that it is right;"
        " its particles hold this share of the posterior, elsewhere the rest, and the frames"
        " must still support it before a fix",
        gt=0,
        lt=1,
    )
    # --- pose, covariance and the fix gate
    mode_radius_m: float = param(
        10.0, "particles within this distance (m) of the mode's centre form it", gt=0
    )
    mode_yaw_deg: float = param(45.0, "... and within this heading (deg)", gt=0, le=180)
    target_precision: float = param(
        0.99,
        "fix only when the dominant hypothesis holds at least this posterior probability"
        " against every other (other places, the mirror, the other lane, off the map): the"
        " share of published fixes that should be right",
        ge=0.5,
        lt=1,
    )
    keep_probability: float = param(
        0.9,
        "a track once taken up (at target_precision) is kept while its mode holds at least"
        " this posterior probability (at most target_precision); below, it is lost and must"
        " be taken up again. A hypothesis the posterior holds at this, fixed or not, that"
        " another overtakes hands half the posterior back to elsewhere: the new one earns"
        " its own",
        gt=0,
        le=1,
    )
    max_position_std_m: float = param(
        5.0, "fix only when the mode's position std (m) is at most this", gt=0
    )
    extra_position_std_m: float = param(
        0.5,
        "added (in quadrature) to the mode's x and y standard deviation in the published"
        " covariance (m): place recognition's granularity, which the particles' spread omits",
        gt=0,
    )
    extra_yaw_std_deg: float = param(
        1.0, "added (in quadrature) to the mode's published yaw standard deviation (deg)", gt=0
    )

    def __post_init__(self) -> None:
        check_bounds(self, "sequence.")
        if self.keep_probability > self.target_precision:
            raise ConfigError(
                f"sequence.keep_probability must be in (0, target_precision], got "
                f"{self.keep_probability}"
            )


#: the defaults, shared (configs are frozen)
DEFAULT_SEQUENCE_CONFIG = SequenceConfig()
