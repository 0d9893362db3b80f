"""Wheel odometry with drift, simulated from ground-truth poses by a documented error model.

Real vehicles localize with odometry (wheels, IMU, visual or LiDAR odometry on tf
``odom -> base_link``), and it drifts. Sources that have no recorded odometry (the synthetic
world, KITTI and KITTI-360 layouts) get one simulated from their ground truth with this
seeded model, so that the sequence localizer is tested against realistic errors, never
against the truth itself:

- **scale error**: every travelled distance is multiplied by ``1 + e_s``, one ``e_s`` per
  traversal with ``|e_s| = scale_error`` and a seeded sign (wheel radius, tyre pressure);
- **yaw drift**: a heading bias of ``b`` degrees per metre travelled, one per traversal with
  ``|b|`` drawn in [0.5, 1] x ``yaw_drift_deg_per_m`` and a seeded sign (an uncalibrated
  gyro or unequal wheels);
- **noise**: per step, Gaussian noise of ``translation_noise`` x the step length on the
  forward and lateral motion, and ``yaw_noise_deg`` on the heading change.

Odometry is planar (SE(2)): the odometry frame is level, z is kept from the truth's first
frame, roll and pitch are 0. Poses are ``T_odom_lidar``, the sensor frame the map entries use,
starting at the truth's first pose projected to the ground plane (so the odometry frame
coincides with the map at the first frame and drifts away from it, as ``odom`` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.geometry import integrate_steps, planar, relative_steps, se2_matrices

#: seed salt of the odometry error stream (separate from the synthetic world's salts)
SALT_ODOMETRY = 31


@dataclass(frozen=True)
class OdometryErrorModel:
    """The drift of a simulated wheel odometry (see the module docstring)."""

    #: magnitude of the per-traversal scale error (0.03: distances 3% too long or too short)
    scale_error: float = 0.03
    #: largest heading bias, degrees per metre travelled (its magnitude is drawn in [0.5, 1]x)
    yaw_drift_deg_per_m: float = 0.02
    #: per-step translation noise, relative to the step length
    translation_noise: float = 0.02
    #: per-step heading noise (deg)
    yaw_noise_deg: float = 0.05

    def __post_init__(self) -> None:
        for name in ("scale_error", "yaw_drift_deg_per_m", "translation_noise", "yaw_noise_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"odometry error {name} must be a finite number >= 0: {value}")
        if self.scale_error >= 0.5:
            raise ConfigError(f"odometry scale_error must be below 0.5, got {self.scale_error}")


#: the model `liploc synth` and the dataset readers use (README: "Odometry")
DEFAULT_ODOMETRY_ERRORS = OdometryErrorModel()

#: a perfect odometry (tests)
EXACT_ODOMETRY = OdometryErrorModel(0.0, 0.0, 0.0, 0.0)


def simulate_odometry(
    truth: np.ndarray,
    seed: tuple[int, ...] | int,
    model: OdometryErrorModel = DEFAULT_ODOMETRY_ERRORS,
) -> np.ndarray:
    """(N, 4, 4) ``T_odom_lidar`` of a drifting odometry along ``truth`` (N, 4, 4).

    ``seed``: the traversal's identity (e.g. (town seed, traversal index)), so that a drive
    always gets the same odometry. Frames whose truth is not finite repeat the last odometry
    pose (the wheels saw no motion that anything can tell).
    """
    poses = np.asarray(truth, np.float64).reshape(-1, 4, 4)
    if len(poses) == 0:
        return np.zeros((0, 4, 4))
    key = (seed,) if isinstance(seed, int) else tuple(seed)
    gen = np.random.default_rng([SALT_ODOMETRY, *(int(k) & 0xFFFFFFFF for k in key)])
    scale = 1.0 + model.scale_error * (1.0 if gen.random() < 0.5 else -1.0)
    bias = math.radians(model.yaw_drift_deg_per_m) * gen.uniform(0.5, 1.0)
    bias *= 1.0 if gen.random() < 0.5 else -1.0
    finite: np.ndarray = np.all(np.isfinite(poses).reshape(len(poses), -1), axis=1)
    xyyaw = planar(np.where(finite[:, None, None], poses, 0.0))
    # carry the last finite pose over gaps: a gap is no motion
    last = int(np.argmax(finite)) if finite.any() else 0
    for i in range(len(xyyaw)):
        if finite[i]:
            last = i
        else:
            xyyaw[i] = xyyaw[last]
    steps = relative_steps(xyyaw)
    length = np.hypot(steps[:, 0], steps[:, 1])
    noisy = steps.copy()
    noisy[:, :2] *= scale
    noisy[:, :2] += (
        model.translation_noise * length[:, None] * gen.standard_normal((len(steps), 2))
    )
    noisy[:, 2] += bias * length + math.radians(model.yaw_noise_deg) * gen.standard_normal(
        len(steps)
    )
    noisy[length == 0.0] = steps[length == 0.0]  # standing still: the wheels do not turn
    odom = integrate_steps(xyyaw[0], noisy)
    z = float(poses[last if not finite[0] else 0, 2, 3]) if finite.any() else 0.0
    return se2_matrices(odom, z)
