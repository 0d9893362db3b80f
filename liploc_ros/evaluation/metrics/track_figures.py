"""The published track's figures (fix ratio and precision, errors, first fix, Recall@1):
:func:`~liploc_ros.evaluation.tracks.track_summary` over a run, with each frame's top-1
retrieval error beside them."""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.evaluation.metrics import RunData
from liploc_ros.evaluation.summary import ground_distances, retrieved_positions
from liploc_ros.evaluation.tracks import track_summary


def top1_errors(run: RunData) -> np.ndarray:
    """Ground distance (m) from each frame's truth to its top-1 entry (NaN: no truth)."""
    from_truth = np.asarray(run.truth, np.float64)[:, :3, 3]
    found = retrieved_positions(run.records, run.database)
    if found.shape[1] == 0:
        return np.full(len(run.records), np.nan)
    return ground_distances(from_truth, found)[:, 0]


def figures(run: RunData) -> dict[str, Any]:
    return track_summary(
        run.estimates, run.truth, threshold_m=run.threshold_m, top1_error_m=top1_errors(run)
    )
