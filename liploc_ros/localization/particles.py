"""Particle-set operations: normalised weights, low-variance resampling, the dominant mode.

The pose a filter publishes must be one place: the weighted mean of particles split over two
streets lies in the buildings between them. So the estimate comes from the posterior's
dominant mode: particles are binned on a coarse grid of position and heading, the heaviest
bins seed candidate modes, each candidate gathers every particle within the mode radius and
heading window of its seed, and the heaviest candidate wins. Its weight (the share of the
posterior it holds) is what the fix gate reads; its pose and covariance are the weighted
mean and spread of its particles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.geometry import wrap

#: candidate modes examined (the heaviest grid bins)
_CANDIDATES = 3


def normalized(log_weights: np.ndarray) -> np.ndarray:
    """Weights summing to 1 from log-weights (log-sum-exp, safe for any scale)."""
    lw = np.asarray(log_weights, np.float64)
    w = np.exp(lw - lw.max())
    return w / w.sum()


def effective_count(weights: np.ndarray) -> float:
    """Kish's effective sample size 1 / sum(w^2) of normalised weights."""
    return float(1.0 / np.sum(np.square(weights)))


def systematic_resample(weights: np.ndarray, count: int, gen: np.random.Generator) -> np.ndarray:
    """``count`` indices drawn by low-variance (systematic) resampling of ``weights``."""
    positions = (gen.random() + np.arange(count)) / count
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.minimum(np.searchsorted(cumulative, positions, side="right"), len(weights) - 1)


@dataclass(frozen=True)
class Mode:
    """The posterior's dominant mode."""

    #: x, y (m) and yaw (rad) of the mode's weighted mean
    pose: np.ndarray
    #: 3 x 3 weighted covariance of x, y, yaw about that mean
    covariance: np.ndarray
    #: share of the total weight it holds
    weight: float
    #: (N,) bool: the particles that form it
    members: np.ndarray

    @property
    def position_std(self) -> float:
        """RMS position spread (m): sqrt of the mean of the x and y variances."""
        return math.sqrt(max(0.5 * (self.covariance[0, 0] + self.covariance[1, 1]), 0.0))


def _gather(
    particles: np.ndarray, weights: np.ndarray, centre: np.ndarray, radius: float, yaw_tol: float
) -> Mode:
    d = np.hypot(particles[:, 0] - centre[0], particles[:, 1] - centre[1])
    members = (d <= radius) & (np.abs(wrap(particles[:, 2] - centre[2])) <= yaw_tol)
    w = weights[members]
    total = float(w.sum())
    if total <= 0:
        return Mode(centre.copy(), np.eye(3), 0.0, members)
    p = particles[members]
    wn = w / total
    yaw = math.atan2(float(wn @ np.sin(p[:, 2])), float(wn @ np.cos(p[:, 2])))
    mean = np.array([float(wn @ p[:, 0]), float(wn @ p[:, 1]), yaw])
    delta = np.stack([p[:, 0] - mean[0], p[:, 1] - mean[1], wrap(p[:, 2] - yaw)], axis=1)
    cov = (delta * wn[:, None]).T @ delta
    return Mode(mean, 0.5 * (cov + cov.T), total, members)


def same_hypothesis(a: np.ndarray, b: np.ndarray, radius_m: float, yaw_rad: float) -> bool:
    """Whether two (x, y, yaw) poses stand for one hypothesis: within ``radius_m`` of each
    other and ``yaw_rad`` of heading (a mode's radius and heading window)."""
    near = float(np.hypot(a[0] - b[0], a[1] - b[1])) <= radius_m
    return near and abs(float(wrap(a[2] - b[2]))) <= yaw_rad


def dominant_mode(
    particles: np.ndarray, weights: np.ndarray, radius_m: float, yaw_tolerance_deg: float
) -> Mode:
    """The heaviest cluster of (N, 3) weighted particles (see the module docstring)."""
    p = np.asarray(particles, np.float64)
    w = np.asarray(weights, np.float64)
    yaw_tol = math.radians(yaw_tolerance_deg)
    cell = radius_m
    heading_bins = max(1, round(math.pi / yaw_tol))
    ix = np.floor(p[:, 0] / cell).astype(np.int64)
    iy = np.floor(p[:, 1] / cell).astype(np.int64)
    ih = np.floor((p[:, 2] + math.pi) / (2 * math.pi) * heading_bins).astype(np.int64)
    ih %= heading_bins
    # one integer key per (x, y, heading) bin: offsets keep every part non-negative
    ix -= ix.min()
    iy -= iy.min()
    keys = (ix * (int(iy.max()) + 1) + iy) * heading_bins + ih
    unique, inverse = np.unique(keys, return_inverse=True)
    bin_weight = np.bincount(inverse, weights=w, minlength=len(unique))
    best: Mode | None = None
    covered = np.zeros(len(p), bool)
    for b in np.argsort(-bin_weight)[:_CANDIDATES]:
        # stop once the particles no candidate has gathered weigh less than the best: a
        # seed bin's own weight is no bound, a mode split over cells outweighs each of them
        if best is not None and (bin_weight[b] <= 0.0 or best.weight >= w[~covered].sum()):
            break
        inside = inverse == b
        if covered[inside].all():
            continue
        seed = _gather(p, w, _weighted_centre(p[inside], w[inside]), radius_m, yaw_tol)
        # re-centre once on the gathered particles: a seed bin may hold a mode's edge only
        mode = _gather(p, w, seed.pose, radius_m, yaw_tol)
        covered |= mode.members
        if best is None or mode.weight > best.weight:
            best = mode
    assert best is not None
    return best


def _weighted_centre(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = float(w.sum())
    wn = w / total if total > 0 else np.full(len(w), 1.0 / len(w))
    yaw = math.atan2(float(wn @ np.sin(p[:, 2])), float(wn @ np.cos(p[:, 2])))
    return np.array([float(wn @ p[:, 0]), float(wn @ p[:, 1]), yaw])
