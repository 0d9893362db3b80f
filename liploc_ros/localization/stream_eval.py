"""Both localizer modes over an embedded drive, scored with the same figures.

``liploc eval`` embeds a map drive's scans and a query drive's images once; this module
turns those embeddings into a map, runs the single-frame estimate (the node's own
:class:`~liploc_ros.localization.localizer.FrameEstimator`) or the sequence filter over the
queries in time order (with the query drive's odometry when it has one), and
scores the published poses with :func:`~liploc_ros.localization.track_metrics.track_summary`,
so that the two modes compare in one table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.factory import check_mode
from liploc_ros.localization.fix_gate import GateRule
from liploc_ros.localization.localizer import FrameEstimator
from liploc_ros.localization.sequence import (
    SequenceLocalizer,
    motions_from_odometry,
    run_sequence,
)
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.localization.track_metrics import (
    fix_ratio_at_precision,
    precision_curve,
    track_summary,
)
from liploc_ros.mapdb import MapDatabase


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
    estimator = FrameEstimator(database, localizer_config)
    if mode == "single":
        estimates = estimator.estimate_batch(q, st)
    else:
        loc = SequenceLocalizer(database, estimator.evidence, config, localizer_config)
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
    if mode == "sequence":
        summary.update(sequence_figures(estimates, t, estimator, config, threshold_m))
    if mode == "sequence" and odometry is None:
        summary["odometry_note"] = "no odometry: the filter's random walk tracks worse"
    if estimator.calibration_warning:
        summary["calibration_warning"] = estimator.calibration_warning
    return estimates, summary


def sequence_figures(
    estimates: list[PoseEstimate],
    truth: np.ndarray,
    estimator: FrameEstimator,
    config: SequenceConfig,
    threshold_m: float,
) -> dict[str, Any]:
    """The sequence run's gate sweep (``precision_curve``, ``fix_ratio_at_precision_99``)
    and its off-map probability (median, 95th percentile, and on frames without ground
    truth: off the map, where the stream has such frames)."""
    ev = estimator.evidence
    rule = GateRule(config.target_precision, config.max_position_std_m, ev.frame_floor,
                    config.keep_probability)  # fmt: skip
    curve = precision_curve(estimates, truth, rule, threshold_m=threshold_m)
    off = np.array([e.offmap_probability for e in estimates], np.float64)
    unknown = ~np.isfinite(np.asarray(truth, np.float64)).reshape(len(truth), -1).all(axis=1)
    stats: dict[str, Any] = {
        "median": float(np.median(off)) if off.size else None,
        "p95": float(np.percentile(off, 95)) if off.size else None,
    }
    if unknown.any():
        stats["off_map_frames"] = int(unknown.sum())
        stats["off_map_median"] = float(np.median(off[unknown]))
    return {
        "fix_ratio_at_precision_99": fix_ratio_at_precision(curve, 0.99),
        "precision_curve": curve,
        "offmap_probability": stats,
    }
