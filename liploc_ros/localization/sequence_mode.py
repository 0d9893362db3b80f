"""``sequence`` mode: the frames in time order through the particle filter
(:class:`~liploc_ros.localization.sequence.SequenceFilter`, Monte Carlo localization)
with the odometry at each frame: a pose only while the filter tracks.

Each frame brings the odometry pose at its stamp (``T_odom_lidar``, any frame that drifts);
the motion since the previous frame's pose is what the filter predicts with. A frame without
odometry makes the filter fall back on its random walk for that step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.errors import ConfigError
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.filter_status import FilterStatus
from liploc_ros.localization.fix_gate import GateRule
from liploc_ros.localization.initial_pose import sensor_prior
from liploc_ros.localization.mode import LocalizationMode, ModeSettings
from liploc_ros.localization.motion import Motion
from liploc_ros.localization.sequence import SequenceFilter

__all__ = ["SequenceMode"]


class SequenceMode(LocalizationMode):
    """The map's single-frame retrieval feeding the sequence filter, frame by frame."""

    name = "sequence"
    uses_odometry = True

    def __init__(self, estimator: Any, settings: ModeSettings) -> None:
        super().__init__(estimator, settings)
        self.filter = SequenceFilter(
            estimator.database, estimator.evidence, settings.sequence, settings.localizer
        )
        self._last_odometry: np.ndarray | None = None

    @property
    def filter_status(self) -> FilterStatus:
        return self.filter.status

    def reset(self) -> None:
        self.filter.reset()
        self._last_odometry = None

    def seed(
        self, T_map_base: np.ndarray, covariance: np.ndarray, T_base_lidar: np.ndarray
    ) -> None:
        """Start from an operator's initial pose: base_link's 4 x 4 pose in the map and its
        6 x 6 covariance (x y z roll pitch yaw), with the LiDAR mount ``T_base_lidar``
        (:meth:`SequenceFilter.seed`). The next frame's odometry starts afresh."""
        mean, cov = sensor_prior(T_map_base, covariance, T_base_lidar)
        self.filter.seed(mean, cov)
        self._last_odometry = None

    def request_full_update(self) -> None:
        self.filter.request_full_update()

    def reconfigure(self, settings: ModeSettings) -> None:
        self.filter.reconfigure(settings.sequence)  # refuses what cannot change first
        self.filter.localizer_config = settings.localizer
        super().reconfigure(settings)

    def motion(self, odometry: np.ndarray | None) -> Motion | None:
        """The motion since the previous frame's odometry pose (None: no odometry now or
        before); remembers ``odometry`` for the next frame."""
        if odometry is None:
            self._last_odometry = None
            return None
        pose = np.asarray(odometry, np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ConfigError(f"odometry pose must be a finite 4 x 4 matrix, got {pose.shape}")
        previous, self._last_odometry = self._last_odometry, pose
        return None if previous is None else Motion.between(previous, pose)

    def estimate(
        self,
        queries: np.ndarray,
        stamps: Sequence[float] | np.ndarray,
        odometry: Sequence[np.ndarray | None] | None = None,
        *,
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """Frames filtered one by one after one search for all of them; ``k`` retrieves at
        least that many entries per frame (for Recall@K), the filter injects at its own
        ``inject_top_k`` best."""
        q = np.asarray(queries, np.float32)
        n = len(q)
        poses = [None] * n if odometry is None else list(odometry)
        if not n == len(stamps) == len(poses):
            raise ConfigError(f"{n} frames, {len(stamps)} stamps, {len(poses)} odometry poses")
        if n == 0:
            return []
        top = self.filter.config.inject_top_k
        t0 = time.perf_counter()
        found = self.estimator.database.search(q, max(top, int(k or 0)))
        shared = {**(timings_ms or {}), "search": 1000.0 * (time.perf_counter() - t0) / n}
        out = []
        for i in range(n):
            est = self.filter.step(
                q[i], float(stamps[i]), self.motion(poses[i]),
                retrieved=(found.indices[i][:top], found.scores[i][:top]),
            )  # fmt: skip
            est = dataclasses.replace(est, indices=found.indices[i], scores=found.scores[i])
            out.append(self.with_timings(est, {**shared, "estimate": est.timings_ms["filter"]}))
        return out

    def gate_rule(self) -> GateRule:
        return GateRule.of(self.filter.config, self.estimator.evidence)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sequence": to_dict(self.filter.config)}

    def status(self) -> dict[str, str]:
        s = self.filter.status
        return {
            "state": s.state.value,
            "mode": self.name,
            "effective_particles": f"{s.effective_particles:.0f}",
            "mode_probability": f"{s.mode_probability:.4f}",
            "offmap_probability": f"{s.offmap_probability:.4f}",
            "tracked_share": f"{s.tracked_share:.3f}",
            "frames_since_reset": str(s.frames),
        }

    def particles(self) -> np.ndarray | None:
        p = self.filter.particles
        return p if len(p) else None
