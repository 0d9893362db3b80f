"""Sequence mode inside localizer_node: the tracker, its odometry, re-localize requests, the
filter's figures for /diagnostics and its particles for RViz. No rclpy here.

The worker thread owns the filter. A re-localize request (service or topic callback, any
thread) only sets a flag; the worker consumes it before its next frame, or within its idle
wait when no frame comes, so a reset never runs in the middle of a filter step. The
diagnostics timer reads :attr:`FilterStatus`, which the filter replaces whole after each
step (never half-updated).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.tracking import TrackingLocalizer
from liploc_ros.ros.odometry_input import OdometryInput

__all__ = ["MARKER_PERIOD_S", "TrackingSession"]

#: the particles go to RViz at most this often (s): a few thousand points per frame is waste
MARKER_PERIOD_S = 0.5


class TrackingSession:
    """One :class:`TrackingLocalizer` fed with ``odometry``; see the module docstring."""

    def __init__(
        self,
        tracker: TrackingLocalizer,
        odometry: OdometryInput,
        *,
        marker_period: float = MARKER_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = tracker
        self.odometry = odometry
        self._marker_period = float(marker_period)
        self._clock = clock
        self._last_markers = -math.inf
        self._reset = threading.Event()
        self.resets = 0

    def request_reset(self) -> None:
        """Ask for global localization from scratch (thread-safe; done by the worker)."""
        self._reset.set()

    def apply_reset(self) -> bool:
        """The worker's side: reset the filter if asked to; True when it did."""
        if not self._reset.is_set():
            return False
        self._reset.clear()
        self.tracker.reset()
        self.resets += 1
        return True

    def localize(
        self, rgb: np.ndarray, stamp: float, timings_ms: Mapping[str, float]
    ) -> PoseEstimate:
        """One frame with the odometry at its stamp (None: the filter random-walks)."""
        odometry = self.odometry.at(stamp)
        return self.tracker.localize(rgb, stamp, odometry, timings_ms=timings_ms)

    def particles_due(self, T_lidar_base: np.ndarray) -> np.ndarray | None:
        """(N, 2) base_link ground positions of the particles, once per marker period (None
        in between, and before the first frame)."""
        now = self._clock()
        if now - self._last_markers < self._marker_period:
            return None
        particles = self.tracker.filter.particles  # (N, 3) LiDAR x, y, yaw in the map
        if not len(particles):
            return None
        self._last_markers = now
        lever = np.asarray(T_lidar_base, np.float64)[:2, 3]  # the mount's ground offset
        c, s = np.cos(particles[:, 2]), np.sin(particles[:, 2])
        return particles[:, :2] + np.column_stack(
            [c * lever[0] - s * lever[1], s * lever[0] + c * lever[1]]
        )

    def diagnostics(self) -> dict[str, str]:
        """Sequence mode's /diagnostics values (``state`` first)."""
        status = self.tracker.status
        missing = self.odometry.missing_counts()
        values = {
            "state": status.state.value,
            "mode": "sequence",
            "effective_particles": f"{status.effective_particles:.0f}",
            "mode_probability": f"{status.mode_probability:.4f}",
            "offmap_probability": f"{status.offmap_probability:.4f}",
            "tracked_share": f"{status.tracked_share:.3f}",
            "frames_since_reset": str(status.frames),
            "resets": str(self.resets),
            "odometry_source": self.odometry.label,
            "odometry_wait_mean_ms": f"{self.odometry.wait_ms():.1f}",
            "total_frames_without_odometry": str(sum(missing.values())),
        }
        for cause, count in sorted(missing.items()):
            values[f"without odometry: {cause}"] = str(count)
        return values
