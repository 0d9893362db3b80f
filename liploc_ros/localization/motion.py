"""How particles move between frames: odometry with noise, or a bounded random walk.

With odometry the model is AMCL's differential-drive one (Thrun et al., Probabilistic
Robotics, sample_motion_model_odometry; nav2 amcl's alpha convention): the measured motion
is decomposed into a first rotation, a translation and a second rotation, and each part is
perturbed with a standard deviation that grows with the motion itself:

    sd_rot1  = sqrt(alpha1 * rot1^2 + alpha2 * trans^2)
    sd_trans = sqrt(alpha3 * trans^2 + alpha4 * (rot1^2 + rot2^2))
    sd_rot2  = sqrt(alpha1 * rot2^2 + alpha2 * trans^2)

where a rotation counts by its distance from 0 or from pi, whichever is smaller, so that
driving backwards is not mistaken for a half turn (as amcl does). Cars also slip sideways
and odometry has no lateral sensor, so a sideways term proportional to the step is added,
plus small floors that keep the particle cloud from collapsing.

Without odometry each particle steps forward along its own heading by a random distance in
[0, max_speed * dt], with a heading and sideways random walk: bounded by the fastest speed
the vehicle could drive, and along the road, since the measurement keeps headings aligned
with the map's streets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.geometry import planar, relative_steps, wrap
from liploc_ros.localization.sequence_config import SequenceConfig

#: below this translation (m) the first rotation is undefined and taken as 0 (amcl: 0.01)
_MIN_TRANSLATION = 0.01


@dataclass(frozen=True)
class Motion:
    """The sensor's planar motion since the previous frame, in the previous sensor frame."""

    #: forward (m)
    dx: float
    #: to the left (m)
    dy: float
    #: heading change (rad, counter-clockwise)
    dyaw: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.dx, self.dy, self.dyaw)):
            raise ConfigError(f"odometry motion must be finite, got {self}")

    @classmethod
    def between(cls, previous: np.ndarray, current: np.ndarray) -> Motion:
        """The motion from odometry pose ``previous`` to ``current`` (4 x 4 each)."""
        step = relative_steps(planar(np.stack([previous, current])))[0]
        return cls(float(step[0]), float(step[1]), float(step[2]))

    @property
    def translation(self) -> float:
        return math.hypot(self.dx, self.dy)

    def applied_to(self, pose: np.ndarray) -> np.ndarray:
        """One (x, y, yaw) pose moved by this motion (in its own frame), without noise."""
        c, s = math.cos(pose[2]), math.sin(pose[2])
        x = pose[0] + c * self.dx - s * self.dy
        y = pose[1] + s * self.dx + c * self.dy
        return np.array([x, y, float(wrap(pose[2] + self.dyaw))])


def _rotation_magnitude(angle: float) -> float:
    """Distance of ``angle`` from 0 or pi, whichever is nearer (amcl's reverse handling)."""
    a = abs(float(wrap(angle)))
    return min(a, math.pi - a)


def odometry_noise(motion: Motion, config: SequenceConfig) -> tuple[float, float, float]:
    """The standard deviations (rot1 rad, trans m, rot2 rad) for ``motion``."""
    trans = motion.translation
    rot1 = math.atan2(motion.dy, motion.dx) if trans >= _MIN_TRANSLATION else 0.0
    rot2 = float(wrap(motion.dyaw - rot1))
    r1, r2 = _rotation_magnitude(rot1), _rotation_magnitude(rot2)
    a1, a2, a3, a4 = config.alpha1, config.alpha2, config.alpha3, config.alpha4
    sd_rot1 = math.sqrt(a1 * r1**2 + a2 * trans**2)
    sd_trans = math.sqrt(a3 * trans**2 + a4 * (r1**2 + r2**2))
    sd_rot2 = math.sqrt(a1 * r2**2 + a2 * trans**2)
    return sd_rot1, sd_trans, sd_rot2


def apply_odometry(
    particles: np.ndarray, motion: Motion, config: SequenceConfig, gen: np.random.Generator
) -> np.ndarray:
    """(N, 3) x, y, yaw moved by a noisy copy of ``motion`` each (a new array)."""
    p = np.asarray(particles, np.float64)
    n = len(p)
    trans = motion.translation
    rot1 = math.atan2(motion.dy, motion.dx) if trans >= _MIN_TRANSLATION else 0.0
    rot2 = float(wrap(motion.dyaw - rot1))
    sd_rot1, sd_trans, sd_rot2 = odometry_noise(motion, config)
    r1 = rot1 + sd_rot1 * gen.standard_normal(n)
    t = trans + sd_trans * gen.standard_normal(n)
    r2 = rot2 + sd_rot2 * gen.standard_normal(n)
    side = (config.lateral_noise * trans) * gen.standard_normal(n)
    heading = p[:, 2] + r1
    out = np.empty_like(p)
    out[:, 0] = p[:, 0] + t * np.cos(heading) - side * np.sin(heading)
    out[:, 1] = p[:, 1] + t * np.sin(heading) + side * np.cos(heading)
    out[:, 2] = heading + r2
    return _jitter(out, config.min_step_noise_m, config.min_step_yaw_noise_deg, gen)


def random_walk(
    particles: np.ndarray, dt: float, config: SequenceConfig, gen: np.random.Generator
) -> np.ndarray:
    """(N, 3) moved without odometry: forward by U(0, max_speed * dt) along each heading."""
    p = np.asarray(particles, np.float64)
    n = len(p)
    dt = min(max(float(dt), 0.0), config.max_gap_s) if math.isfinite(dt) else config.max_gap_s
    step = gen.uniform(0.0, config.max_speed_mps * dt, n)
    side = config.random_walk_lateral_m * gen.standard_normal(n)
    heading = p[:, 2] + math.radians(config.random_walk_yaw_deg) * gen.standard_normal(n)
    out = np.empty_like(p)
    out[:, 0] = p[:, 0] + step * np.cos(heading) - side * np.sin(heading)
    out[:, 1] = p[:, 1] + step * np.sin(heading) + side * np.cos(heading)
    out[:, 2] = heading
    return _jitter(out, config.min_step_noise_m, config.min_step_yaw_noise_deg, gen)


def _jitter(
    p: np.ndarray, xy_std: float, yaw_std_deg: float, gen: np.random.Generator
) -> np.ndarray:
    if xy_std > 0:
        p[:, :2] += xy_std * gen.standard_normal((len(p), 2))
    if yaw_std_deg > 0:
        p[:, 2] += math.radians(yaw_std_deg) * gen.standard_normal(len(p))
    p[:, 2] = wrap(p[:, 2])
    return p


def motions_from_odometry(odometry: np.ndarray | None, count: int) -> list[Motion | None]:
    """Per frame, the motion since the previous frame from (N, 4, 4) odometry poses
    (None for the first frame, for frames without finite odometry, or without odometry)."""
    if odometry is None:
        return [None] * count
    odom = np.asarray(odometry, np.float64)
    if len(odom) != count:
        raise ConfigError(f"{len(odom)} odometry poses for {count} frames")
    finite: np.ndarray = np.all(np.isfinite(odom).reshape(count, -1), axis=1)
    out: list[Motion | None] = [None]
    for i in range(1, count):
        out.append(Motion.between(odom[i - 1], odom[i]) if finite[i] and finite[i - 1] else None)
    return out
