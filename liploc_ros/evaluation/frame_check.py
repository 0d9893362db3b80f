"""Is the query drive's ground truth in the map's frame? A check before trusting a recall.

A query drive whose poses are anchored elsewhere (each KITTI raw drive converted on its own
starts at the origin of its own frame) lands tens of metres from the mapped route: the
recall then reads 0 and the errors tens of metres, and nothing says why. Here the median
ground distance from each query position to its nearest map entry is compared with the
success threshold: a drive on the mapped roads sits a few metres from it, a drive in another
frame far beyond. ``liploc localize`` and ``liploc eval`` run it and say so loudly; it does
not change what they measure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["GroundTruthFrameCheck", "check_ground_truth_frame"]


@dataclass(frozen=True)
class GroundTruthFrameCheck:
    """How far the query ground truth lies from the mapped area (ground plane, m)."""

    #: query positions checked (finite ones)
    queries: int
    #: median distance from a query position to its nearest map entry (None: no query)
    median_nearest_m: float | None
    #: fraction of the queries within ``threshold_m`` of a map entry
    near_fraction: float | None
    threshold_m: float
    #: True when the median lies beyond the threshold: probably another frame than the map's
    suspect: bool

    def message(self) -> str:
        """One line for the report (the warning when ``suspect``)."""
        if self.median_nearest_m is None:
            return "ground truth frame: no query position to check"
        where = (
            f"the query ground truth lies a median {self.median_nearest_m:.1f} m from the "
            f"nearest map entry ({self.near_fraction:.0%} of {self.queries} queries within "
            f"{self.threshold_m:g} m)"
        )
        if not self.suspect:
            return f"ground truth frame: ok, {where}"
        return (
            f"WARNING: {where}: the ground truth is probably not in the map's frame (a drive "
            "anchored at its own first pose?), so the recall and errors measure the frames' "
            "offset, not the localization"
        )

    def as_dict(self) -> dict[str, Any]:
        """For summary.json, with the message."""
        return {**asdict(self), "message": self.message()}


def check_ground_truth_frame(
    query_xy: np.ndarray, map_xy: np.ndarray, threshold_m: float
) -> GroundTruthFrameCheck:
    """Compare the median nearest-map-entry distance of the query positions (N x >= 2, rows
    with NaN ignored) with ``threshold_m``; ``map_xy`` likewise (M x >= 2)."""
    q = np.asarray(query_xy, np.float64)[:, :2]
    m = np.asarray(map_xy, np.float64)[:, :2]
    q = q[np.isfinite(q).all(axis=1)]
    m = m[np.isfinite(m).all(axis=1)]
    if len(q) == 0 or len(m) == 0:
        return GroundTruthFrameCheck(len(q), None, None, float(threshold_m), False)
    nearest, _ = cKDTree(m).query(q)
    median = float(np.median(nearest))
    return GroundTruthFrameCheck(
        queries=len(q),
        median_nearest_m=median,
        near_fraction=float(np.mean(nearest <= threshold_m)),
        threshold_m=float(threshold_m),
        suspect=median > threshold_m,
    )
