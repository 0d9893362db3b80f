"""Both localizer modes over an embedded drive, scored with the same figures.

``liploc eval`` embeds a map drive's scans and a query drive's images once; this module
turns those embeddings into a map, runs the single-frame estimate or the sequence filter
over the queries in time order (with the query drive's odometry when it has one), and
scores the published poses with :func:`~liploc_ros.localization.track_metrics.track_summary`,
so that the two modes compare in one table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate, estimate_pose
from liploc_ros.localization.factory import check_mode
from liploc_ros.localization.sequence import (
    SequenceLocalizer,
    motions_from_odometry,
    run_sequence,
)
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.localization.track_metrics import track_summary
from liploc_ros.mapdb import MapDatabase


def single_frame_estimates(
    database: MapDatabase,
    queries: np.ndarray,
    stamps: np.ndarray,
    config: LocalizerConfig = DEFAULT_CONFIG,
) -> list[PoseEstimate]:
    """Every query alone: its top-k and the single-frame estimate (as the node computes it)."""
    found = database.search(queries, config.top_k)
    emb = database.embeddings
    out = []
    for i in range(len(queries)):
        idx, sc = found.indices[i], found.scores[i]
        best = int(idx[0]) if len(idx) and idx[0] >= 0 else -1
        scale = 1.0
        if best >= 0:
            scale = float(np.linalg.norm(np.asarray(queries[i], np.float64))) * float(
                np.linalg.norm(np.asarray(emb[best], np.float64))
            )
        out.append(estimate_pose(idx, sc, found.poses[i], stamps[i], config, scale=scale))
    return out


def evaluate_stream(
    database: MapDatabase,
    queries: np.ndarray,
    truth: np.ndarray,
    stamps: np.ndarray,
    odometry: np.ndarray | None,
    *,
    mode: str = "sequence",
    threshold_m: float = 20.0,
    config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
    localizer_config: LocalizerConfig = DEFAULT_CONFIG,
) -> tuple[list[PoseEstimate], dict[str, Any]]:
    """The estimates of ``queries`` (Q, D) in time order and their figures (summary keys)."""
    check_mode(mode)  # the modes of the localizers (localization.factory)
    q = np.asarray(queries, np.float32)
    t = np.asarray(truth, np.float64)
    st = np.asarray(stamps, np.float64)
    if not len(q) == len(t) == len(st):
        raise ConfigError(f"{len(q)} queries, {len(t)} ground-truth poses, {len(st)} stamps")
    if mode == "single":
        estimates = single_frame_estimates(database, q, st, localizer_config)
    else:
        loc = SequenceLocalizer(database, config, localizer_config)
        estimates = run_sequence(loc, q, st, motions_from_odometry(odometry, len(q)))
    top = database.search(q, 1).indices[:, 0]
    top1 = np.full(len(q), np.inf)
    ok = top >= 0
    top1[ok] = np.hypot(*(database.positions[top[ok], :2] - t[ok, :2, 3]).T)
    summary = {
        "mode": mode,
        "odometry": None if mode == "single" else ("none" if odometry is None else "yes"),
        **track_summary(estimates, t, threshold_m=threshold_m, top1_error_m=top1),
    }
    if mode == "sequence" and odometry is None:
        summary["odometry_note"] = "no odometry: the filter's random walk tracks worse"
    return estimates, summary
