"""``single`` mode: every frame alone, through the map's single-frame estimate
(:class:`~liploc_ros.localization.localizer.FrameEstimator`): no memory, no odometry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.mode import LocalizationMode

__all__ = ["SingleFrameMode"]


class SingleFrameMode(LocalizationMode):
    """Each frame's top-k matches -> its pose, whatever came before."""

    name = "single"

    def estimate(
        self,
        queries: np.ndarray,
        stamps: Sequence[float] | np.ndarray,
        odometry: Sequence[np.ndarray | None] | None = None,
        *,
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        return self.estimator.estimate_batch(queries, stamps, k=k, timings_ms=timings_ms)
