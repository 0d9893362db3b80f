"""The evidence of the last few metres at one hypothesis: what tells a kidnapped track at once.

A single frame at the true place scores below the map's frame floor on 1% of frames, so the
floor must be low, and the first frames after a kidnap often score just above it: the
posterior, which weighs frames at the tempered rate, holds the old place for tens of metres.
Two or three poor frames in a row are much rarer at the true place than one, so the gate also
tests the evidence summed over the last :data:`WINDOW_STEPS` frame steps against the
calibrated floor of that sum (the true place's 1% quantile, measured along the calibration
drive exactly as here: :func:`window_sums` on the same series).

The window is measured in metres, not frames: each frame counts by the metres driven since
the previous one over the calibration drive's frame step (a frame without odometry counts as
one step), so a camera at 30 Hz and the calibration drive's frame spacing sum alike. The
trail follows one hypothesis: when the dominant mode is another place than the previous
frame's, moved by the odometry, it starts again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from liploc_ros.localization.particles import same_hypothesis

__all__ = ["WINDOW_STEPS", "EvidenceTrail", "window_sums"]

#: the windows (in calibration frame steps) whose summed evidence the gate tests
WINDOW_STEPS: tuple[int, ...] = (2, 3)
#: frames a trail holds at most
_MAX_FRAMES = 128


def window_sums(
    evidence: Sequence[float] | np.ndarray,
    steps: Sequence[float] | np.ndarray,
    frame_step_m: float,
) -> tuple[float, ...]:
    """Per window of :data:`WINDOW_STEPS`, the evidence of the frames (oldest first, the last
    is the newest) over the last ``k * frame_step_m`` metres, each weighted by its metres
    (``steps``: since the previous frame) over ``frame_step_m``; NaN where the frames cover
    less than the window."""
    out = []
    for k in WINDOW_STEPS:
        need, total = float(k), 0.0
        for value, step in zip(reversed(evidence), reversed(steps), strict=True):
            weight = min(step / frame_step_m, need)
            total += weight * value
            need -= weight
            if need <= 1e-9:
                break
        out.append(total if need <= 1e-9 else math.nan)
    return tuple(out)


def calibration_windows(
    evidence: np.ndarray, positions: np.ndarray, frame_step_m: float
) -> np.ndarray:
    """(F, len(WINDOW_STEPS)) the window sums after each frame of a calibration drive
    (its frames' evidence at their true place and (F, 2) positions, in time order; NaN rows
    where the drive so far is shorter than a window)."""
    steps = np.r_[frame_step_m, np.hypot(*np.diff(positions, axis=0).T)]
    longest = max(WINDOW_STEPS) * frame_step_m
    out = np.full((len(evidence), len(WINDOW_STEPS)), np.nan)
    start = 0
    for i in range(len(evidence)):
        while start < i and steps[start + 1 : i + 1].sum() > longest:
            start += 1
        out[i] = window_sums(evidence[start : i + 1], steps[start : i + 1], frame_step_m)
    return out


class EvidenceTrail:
    """The frames' evidence at the dominant hypothesis, as long as it stays the same one."""

    def __init__(self, frame_step_m: float, radius_m: float, yaw_rad: float) -> None:
        self.frame_step_m = frame_step_m
        self.radius_m = radius_m
        self.yaw_rad = yaw_rad
        self.clear()

    def clear(self) -> None:
        self._pose: np.ndarray | None = None
        self._evidence: list[float] = []
        self._steps: list[float] = []

    def push(
        self, pose: np.ndarray, predicted: np.ndarray | None, evidence: float, step_m: float | None
    ) -> tuple[float, ...]:
        """Add a frame: the dominant mode's x, y, yaw (``pose``), where the previous frame's
        mode has moved to by the odometry (``predicted``, None: start again), its evidence
        there and the metres since the previous frame (None: one calibration step). Returns
        the window sums (:func:`window_sums`)."""
        if predicted is None or not same_hypothesis(pose, predicted, self.radius_m, self.yaw_rad):
            self._evidence, self._steps = [], []
        step = self.frame_step_m if step_m is None or not math.isfinite(step_m) else abs(step_m)
        # the first frame of a trail has no previous one: it counts as one step
        self._evidence.append(float(evidence))
        self._steps.append(step if self._evidence[:-1] else self.frame_step_m)
        longest = max(WINDOW_STEPS) * self.frame_step_m
        while len(self._steps) > 1 and sum(self._steps[1:]) >= longest:
            del self._evidence[0], self._steps[0]
        # a vehicle standing still adds frames but no metres: bounded all the same (its
        # windows are then untested until it has driven them again)
        del self._evidence[:-_MAX_FRAMES], self._steps[:-_MAX_FRAMES]
        self._pose = np.asarray(pose, np.float64).copy()
        return window_sums(self._evidence, self._steps, self.frame_step_m)

    @property
    def pose(self) -> np.ndarray | None:
        """The last frame's mode (x, y, yaw), or None."""
        return None if self._pose is None else self._pose.copy()
