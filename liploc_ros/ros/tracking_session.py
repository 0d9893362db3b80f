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

from liploc_ros.errors import LiplocError
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.initial_pose import sensor_prior
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.mode import ModeSettings
from liploc_ros.ros.odometry_input import OdometryInput

__all__ = ["MARKER_PERIOD_S", "TrackingSession"]

#: the particles go to RViz at most this often (s): a few thousand points per frame is waste
MARKER_PERIOD_S = 0.5


class TrackingSession:
    """A tracking mode's :class:`Localizer` fed with ``odometry``; see the module
    docstring. The mode (``localizer.mode``) does the work through the one mode interface
    (:class:`~liploc_ros.localization.mode.LocalizationMode`)."""

    def __init__(
        self,
        localizer: Localizer,
        odometry: OdometryInput,
        *,
        marker_period: float = MARKER_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.localizer = localizer
        self.odometry = odometry
        self._marker_period = float(marker_period)
        self._clock = clock
        self._last_markers = -math.inf
        self._lock = threading.Lock()
        self._reset = False
        self._seed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._nomotion = False
        self._settings: ModeSettings | None = None
        self.resets = 0
        self.seeds = 0
        self.seed_error = ""  # why the last refused seed was refused

    def request_reset(self) -> None:
        """Ask for global localization from scratch (thread-safe; done by the worker)."""
        with self._lock:
            self._reset, self._seed = True, None

    def request_seed(
        self, T_map_base: np.ndarray, covariance: np.ndarray, T_base_lidar: np.ndarray
    ) -> None:
        """Ask to start from an operator's initial pose (thread-safe; done by the worker):
        base_link's 4 x 4 pose in the map, its 6 x 6 covariance (x y z roll pitch yaw) and
        the LiDAR mount. Checked now, so that the caller can refuse a malformed pose
        (:class:`~liploc_ros.errors.ConfigError`)."""
        sensor_prior(T_map_base, covariance, T_base_lidar)
        seed = (np.array(T_map_base, np.float64), np.array(covariance, np.float64),
                np.array(T_base_lidar, np.float64))  # fmt: skip
        with self._lock:
            self._reset, self._seed = False, seed

    def request_nomotion_update(self) -> None:
        """Ask for the next frame to be weighed as a whole step even without motion
        (AMCL's ``request_nomotion_update``; thread-safe)."""
        with self._lock:
            self._nomotion = True

    def request_config(self, settings: ModeSettings) -> None:
        """New dynamic settings for the mode, taken between frames (thread-safe)."""
        with self._lock:
            self._settings = settings

    def apply_requests(self) -> tuple[str, ...]:
        """The worker's side, between frames: carry out what was asked; returns what was
        done, of "config", "reset", "seed" (or "seed refused": :attr:`seed_error` says why),
        "nomotion" (in that order)."""
        with self._lock:
            reset, seed, nomotion, config = self._reset, self._seed, self._nomotion, self._settings
            self._reset, self._seed, self._nomotion, self._settings = False, None, False, None
        mode = self.localizer.mode
        done = []
        if config is not None:
            self.localizer.reconfigure(config)
            done.append("config")
        if reset:
            mode.reset()
            self.resets += 1
            done.append("reset")
        if seed is not None:
            try:
                mode.seed(*seed)
            except LiplocError as err:  # off the map: the filter goes on as it was
                self.seed_error = str(err)
                done.append("seed refused")
            else:
                self.seeds += 1
                done.append("seed")
        if nomotion:
            mode.request_full_update()
            done.append("nomotion")
        return tuple(done)

    def apply_reset(self) -> bool:
        """The worker's side: carry out the pending requests; True when the filter
        restarted (a reset or a seed)."""
        done = self.apply_requests()
        return "reset" in done or "seed" in done

    def localize(
        self, rgb: np.ndarray, stamp: float, timings_ms: Mapping[str, float]
    ) -> PoseEstimate:
        """One frame with the odometry at its stamp (None: the filter random-walks)."""
        odometry = self.odometry.at(stamp)
        return self.localizer.localize(rgb, stamp, odometry, timings_ms=timings_ms)

    def particles_due(self, T_lidar_base: np.ndarray) -> np.ndarray | None:
        """(N, 2) base_link ground positions of the particles, once per marker period (None
        in between, and before the first frame)."""
        now = self._clock()
        if now - self._last_markers < self._marker_period:
            return None
        particles = self.localizer.mode.particles()  # (N, 3) LiDAR x, y, yaw in the map
        if particles is None or not len(particles):
            return None
        self._last_markers = now
        lever = np.asarray(T_lidar_base, np.float64)[:2, 3]  # the mount's ground offset
        c, s = np.cos(particles[:, 2]), np.sin(particles[:, 2])
        return particles[:, :2] + np.column_stack(
            [c * lever[0] - s * lever[1], s * lever[0] + c * lever[1]]
        )

    def diagnostics(self) -> dict[str, str]:
        """The mode's /diagnostics values (``state`` first), then the session's."""
        missing = self.odometry.missing_counts()
        values = {
            **self.localizer.mode.status(),
            "resets": str(self.resets),
            "initial_poses": str(self.seeds),
            "odometry_source": self.odometry.label,
            "odometry_wait_mean_ms": f"{self.odometry.wait_ms():.1f}",
            "total_frames_without_odometry": str(sum(missing.values())),
        }
        for cause, count in sorted(missing.items()):
            values[f"without odometry: {cause}"] = str(count)
        return values
