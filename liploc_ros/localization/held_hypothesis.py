"""The hypothesis the sequence filter's posterior holds, followed from frame to frame.

When another hypothesis overtakes the held one, half the posterior goes back to elsewhere
(:class:`~liploc_ros.localization.sequence.SequenceFilter`): so the filter must know where
the held one is now, to tell "the same place, moved on" from "another place". With odometry
it moves by the measured motion. Without, where it went is only bounded: by the random
walk's largest speed and its heading steps (:func:`~liploc_ros.localization.motion.random_walk`),
so the window within which a mode is still the held one widens by them, frame after frame,
until the mode is held again.
"""

from __future__ import annotations

import math

import numpy as np

from liploc_ros.localization.motion import Motion
from liploc_ros.localization.particles import same_hypothesis
from liploc_ros.localization.sequence_config import SequenceConfig

#: the heading window widens by this many standard deviations of the random walk's heading
_YAW_SIGMAS = 3.0


class HeldHypothesis:
    """Where the held hypothesis is (x, y, yaw), or none; how far it may have gone unseen."""

    def __init__(self) -> None:
        self.pose: np.ndarray | None = None
        self._slack_m = 0.0
        self._blind_steps = 0

    def hold(self, pose: np.ndarray) -> None:
        """The posterior holds the hypothesis at ``pose`` now."""
        self.pose = np.array(pose, np.float64)
        self._slack_m, self._blind_steps = 0.0, 0

    def clear(self) -> None:
        self.pose = None

    def move(self, motion: Motion | None, dt: float, config: SequenceConfig) -> None:
        """Follow a frame's motion (None: no odometry, ``dt`` seconds since the last)."""
        if self.pose is None:
            return
        if motion is not None:
            self.pose = motion.applied_to(self.pose)
            return
        gap = min(max(dt, 0.0), config.max_gap_s) if math.isfinite(dt) else config.max_gap_s
        self._slack_m += config.max_speed_mps * gap
        self._blind_steps += 1

    def holds(self, pose: np.ndarray, config: SequenceConfig) -> bool:
        """Whether a mode at ``pose`` is the held hypothesis (True when none is held)."""
        if self.pose is None:
            return True
        step = math.radians(config.random_walk_yaw_deg)
        turn = _YAW_SIGMAS * step * math.sqrt(self._blind_steps)
        yaw = min(math.radians(config.mode_yaw_deg) + turn, math.pi)
        return same_hypothesis(pose, self.pose, config.mode_radius_m + self._slack_m, yaw)
