"""Camera frames with odometry poses -> tracked pose estimates: the sequence mode's front end.

:class:`TrackingLocalizer` puts the single-frame :class:`Localizer` (preprocess, encode,
retrieve) in front of the :class:`SequenceLocalizer` filter and keeps the odometry
bookkeeping: each frame brings the odometry pose at its stamp (``T_odom_lidar``, any frame
that drifts), and the motion since the previous frame's pose is what the filter predicts
with. A frame without odometry makes the filter fall back on its random walk for that step.
The CLI (``liploc localize --mode sequence``) and the localizer node both use it, so the
two run exactly the same filter.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.filter_status import FilterStatus
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.motion import Motion
from liploc_ros.localization.sequence import SequenceLocalizer
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.preprocess.camera import ColorOrder


class TrackingLocalizer:
    """A :class:`Localizer` whose frames go through the sequence filter, in time order."""

    def __init__(
        self, localizer: Localizer, config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG
    ) -> None:
        self.localizer = localizer
        estimator = localizer.estimator
        self.filter = SequenceLocalizer(
            localizer.database, estimator.evidence, config, localizer.config
        )
        #: why the map's scores are read with conservative settings ("" when calibrated)
        self.calibration_warning = estimator.calibration_warning
        self._last_odometry: np.ndarray | None = None

    @property
    def frame_id(self) -> str:
        return self.localizer.frame_id

    @property
    def status(self) -> FilterStatus:
        return self.filter.status

    def reset(self) -> None:
        """Restart global localization (the node's re-localize service)."""
        self.filter.reset()
        self._last_odometry = None

    def warm_up(self) -> None:
        """Warm the encoder and the index up, then forget the dummy frame."""
        self.localizer.warm_up()
        self.reset()

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

    def localize(
        self,
        image: np.ndarray,
        stamp: float,
        odometry: np.ndarray | None,
        *,
        order: ColorOrder = "rgb",
        timings_ms: Mapping[str, float] | None = None,
    ) -> PoseEstimate:
        """One frame with the odometry pose at its stamp (None: no odometry)."""
        return self.localize_batch([image], [stamp], [odometry], order=order,
                                   timings_ms=timings_ms)[0]  # fmt: skip

    def localize_batch(
        self,
        images: Sequence[np.ndarray],
        stamps: Sequence[float],
        odometry: Sequence[np.ndarray | None],
        *,
        order: ColorOrder = "rgb",
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """Frames in time order, encoded together, then filtered one by one. ``k`` retrieves
        at least that many entries per frame (for Recall@K); the filter injects at its own
        ``inject_top_k`` best."""
        n = len(images)
        if not n == len(stamps) == len(odometry):
            raise ConfigError(f"{n} images, {len(stamps)} stamps, {len(odometry)} odometry poses")
        if n == 0:
            return []
        cfg = self.filter.config
        queries, shared = self.localizer.encode(images, order=order)
        t0 = time.perf_counter()
        depth = max(cfg.inject_top_k, int(k or 0))
        found = self.localizer.database.search(queries, depth)
        shared["search"] = 1000.0 * (time.perf_counter() - t0) / n
        extra = dict(timings_ms or {})
        out = []
        for i in range(n):
            top = cfg.inject_top_k
            est = self.filter.step(
                queries[i], float(stamps[i]), self.motion(odometry[i]),
                retrieved=(found.indices[i][:top], found.scores[i][:top]),
            )  # fmt: skip
            timings = {**extra, **shared, "estimate": est.timings_ms.get("filter", 0.0)}
            timings["total"] = sum(timings.values())
            out.append(
                dataclasses.replace(
                    est, indices=found.indices[i], scores=found.scores[i], timings_ms=timings
                )
            )
        return out
