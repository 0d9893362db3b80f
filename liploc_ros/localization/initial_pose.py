"""An operator's initial pose as the sequence filter's prior (AMCL's ``initialpose``).

The operator gives base_link's pose in the map with a 6 x 6 covariance (RViz "2D Pose
Estimate", nav2); the filter runs over the LiDAR's ground pose (x, y, yaw). The mean moves
by the mount (``T_map_lidar = T_map_base @ T_base_lidar``) and the covariance of x, y, yaw
with it, to first order: a yaw error swings the LiDAR around base_link by the lever arm.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.geometry import wrap
from liploc_ros.localization.sequence_config import SequenceConfig

if TYPE_CHECKING:
    from liploc_ros.localization.measurement import MapField

__all__ = ["draw_prior", "prior_on_map", "sensor_prior"]

#: rounds of re-drawing an initial pose's particles that no map entry explains
_PRIOR_REDRAWS = 5

#: x, y, yaw in ROS's 6 x 6 pose covariance order (x y z roll pitch yaw)
_PLANAR = [0, 1, 5]


def sensor_prior(
    T_map_base: np.ndarray, covariance: np.ndarray, T_base_lidar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, yaw of the LiDAR in the map, its 3 x 3 covariance) from base_link's pose and
    6 x 6 covariance; a :class:`ConfigError` names what is malformed."""
    T = np.asarray(T_map_base, np.float64)
    cov6 = np.asarray(covariance, np.float64)
    mount = np.asarray(T_base_lidar, np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ConfigError(f"initial pose: need a finite 4 x 4 pose, got shape {T.shape}")
    if cov6.shape != (6, 6) or not np.isfinite(cov6).all():
        raise ConfigError(f"initial pose: need a finite 6 x 6 covariance, got {cov6.shape}")
    lidar = T @ mount
    mean = np.array([lidar[0, 3], lidar[1, 3], math.atan2(lidar[1, 0], lidar[0, 0])])
    lever = T[:2, :2] @ mount[:2, 3]  # base_link -> LiDAR on the ground, in the map
    jac = np.eye(3)
    jac[0, 2], jac[1, 2] = -lever[1], lever[0]  # d(lidar xy) / d(yaw)
    return mean, jac @ cov6[np.ix_(_PLANAR, _PLANAR)] @ jac.T


def draw_prior(
    mean: np.ndarray,
    covariance: np.ndarray,
    config: SequenceConfig,
    gen: np.random.Generator,
    count: int | None = None,
) -> np.ndarray:
    """``count`` (default ``config.particles``) x, y, yaw drawn from N(mean, covariance +
    the injection spread): the operator's click is taken as no finer than the filter's own
    injections."""
    mu = np.asarray(mean, np.float64).reshape(-1)
    cov = np.asarray(covariance, np.float64)
    if mu.shape != (3,) or cov.shape != (3, 3):
        raise ConfigError(
            f"initial pose: need x, y, yaw and a 3 x 3 covariance, got shapes {mu.shape} and "
            f"{cov.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise ConfigError("initial pose: the mean or the covariance is not finite")
    cov = 0.5 * (cov + cov.T)
    spread = [config.inject_position_std_m**2] * 2 + [math.radians(config.inject_yaw_std_deg) ** 2]
    cov = cov + np.diag(spread)
    if np.linalg.eigvalsh(cov).min() <= 0.0:
        raise ConfigError("initial pose: the covariance is not positive semi-definite")
    particles = gen.multivariate_normal(mu, cov, size=count or config.particles, method="cholesky")
    particles[:, 2] = wrap(particles[:, 2])
    return particles


def prior_on_map(
    mean: np.ndarray,
    covariance: np.ndarray,
    config: SequenceConfig,
    field: MapField,
    gen: np.random.Generator,
) -> np.ndarray:
    """``config.particles`` draws (:func:`draw_prior`) conditioned on the map: draws no map
    entry explains are drawn again, a few rounds, then replaced by copies of the others. A
    prior wholly off the map raises :class:`MapError`: off the map is what the filter's
    *elsewhere* already stands for."""
    particles = draw_prior(mean, covariance, config, gen)
    for _ in range(_PRIOR_REDRAWS):  # the prior on the map: "the vehicle is here"
        off = field.explaining(particles) < 0
        if off.all():
            x, y, yaw = (float(v) for v in np.asarray(mean, np.float64).reshape(3))
            raise MapError(
                f"the initial pose (x {x:.1f} y {y:.1f} yaw {math.degrees(yaw):.0f} deg, "
                f"the sensor's) is off the map: none of {len(particles)} draws from it has "
                f"a map entry within entry_radius_m ({config.entry_radius_m} m) facing its "
                f"heading (heading_tolerance_deg {config.heading_tolerance_deg}); kept the "
                "filter as it was"
            )
        if not off.any():
            break
        particles[off] = draw_prior(mean, covariance, config, gen, int(off.sum()))
    off = field.explaining(particles) < 0
    if off.any():  # still unexplained: replaced by copies of the explained draws
        kept = particles[~off]
        particles = kept[gen.integers(len(kept), size=len(particles))]
    return particles
