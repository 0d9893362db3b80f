"""Where the car is at each frame of a traversal: lane, direction, speed profile, wander.

Every traversal covers the stretch [0, (frames - 1) * speed / rate] of the town's route.
Within it the speed follows a smooth seeded profile (so frames of two traversals fall at
different places), the car keeps to its lane (offset from the route's centre line) with a
smooth lateral and heading wander, and a reverse traversal drives the stretch end to start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import TraversalConfig
from liploc_ros.datasets.synthetic.route import Path
from liploc_ros.datasets.synthetic.seeding import SALT_TRAJECTORY, rng


@dataclass(frozen=True)
class Trajectory:
    """Per frame: route arc length, LiDAR position on the ground plane, heading, stamp."""

    s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    stamps: np.ndarray

    def poses(self, height: float) -> np.ndarray:
        """(N, 4, 4) float64 T_map_lidar: level sensor at ``height`` above the ground."""
        n = len(self.s)
        T = np.zeros((n, 4, 4))
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        T[:, 0, 0], T[:, 0, 1] = c, -s
        T[:, 1, 0], T[:, 1, 1] = s, c
        T[:, 2, 2] = 1.0
        T[:, 0, 3], T[:, 1, 3], T[:, 2, 3] = self.x, self.y, height
        T[:, 3, 3] = 1.0
        return T


def smooth_noise(
    gen: np.random.Generator, t: np.ndarray, periods: tuple[float, float]
) -> np.ndarray:
    """A smooth random signal of ``t`` within [-1, 1] (a few sines of random period/phase)."""
    n_terms = 4
    period = gen.uniform(*periods, size=n_terms)
    phase = gen.uniform(0.0, 2 * math.pi, size=n_terms)
    amp = gen.uniform(0.5, 1.0, size=n_terms)
    wave = np.sin(2 * math.pi * t[:, None] / period + phase) @ amp
    return wave / amp.sum()


def plan_traversal(
    path: Path, trav: TraversalConfig, frames: int, rate_hz: float, lane_width: float, seed: int
) -> Trajectory:
    """The car's ground-truth track for ``frames`` frames of traversal ``trav``."""
    gen = rng(seed, SALT_TRAJECTORY, trav.index)
    dt = 1.0 / rate_hz
    t = np.arange(frames) * dt
    length = (frames - 1) * trav.speed * dt
    speed = np.clip(1.0 + trav.speed_variation * smooth_noise(gen, t, (8.0, 40.0)), 0.1, None)
    lateral = trav.lateral_jitter * smooth_noise(gen, t, (4.0, 20.0))
    wobble = math.radians(trav.heading_jitter_deg) * smooth_noise(gen, t, (2.0, 10.0))
    steps = speed[:-1]
    s = np.concatenate([[0.0], np.cumsum(steps)]) * (length / max(steps.sum(), 1e-12))
    if trav.reverse:
        s = length - s
    x, y, heading = path.sample(s)
    # lane offset to the left of the direction of travel, which is the route's right in reverse
    offset = (lane_width / 2 if trav.lane == "left" else -lane_width / 2) + lateral
    if trav.reverse:
        offset = -offset
    x = x - np.sin(heading) * offset
    y = y + np.cos(heading) * offset
    if trav.reverse:
        heading = heading + math.pi
    yaw = np.angle(np.exp(1j * (heading + wobble)))
    return Trajectory(s=s, x=x, y=y, yaw=yaw, stamps=t.copy())
