"""Any localizer mode over an embedded drive, scored with the same figures.

``liploc eval`` embeds a map drive's scans and a query drive's images once; this module
turns those embeddings into a map, runs the mode (the node's own, over the map's
:class:`~liploc_ros.localization.localizer.FrameEstimator`) over the queries in time order
(with the query drive's odometry when it has one), and
scores the published poses with :func:`~liploc_ros.evaluation.tracks.track_summary`,
so that the two modes compare in one table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.evaluation.tracks import fix_ratio_at_precision, precision_curve, track_summary
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.localizer import FrameEstimator
from liploc_ros.localization.mode import LocalizationMode, ModeSettings
from liploc_ros.localization.mode_registry import mode_class
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
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
    """The estimates of ``queries`` (Q, D) in time order and their figures (summary keys),
    by the ``mode`` a localizer runs in (:mod:`~liploc_ros.localization.mode_registry`)."""
    runner_class = mode_class(mode)
    q = np.asarray(queries, np.float32)
    t = np.asarray(truth, np.float64)
    st = np.asarray(stamps, np.float64)
    if not len(q) == len(t) == len(st):
        raise ConfigError(f"{len(q)} queries, {len(t)} ground-truth poses, {len(st)} stamps")
    estimator = FrameEstimator(database, localizer_config)
    runner = runner_class(estimator, ModeSettings(localizer_config, config))
    poses = None
    if odometry is not None:
        odom = np.asarray(odometry, np.float64)
        if len(odom) != len(q):
            raise ConfigError(f"{len(odom)} odometry poses for {len(q)} frames")
        poses = [p if np.isfinite(p).all() else None for p in odom]
    estimates = runner.estimate(q, st, poses)
    top = database.search(q, 1).indices[:, 0]
    top1 = np.full(len(q), np.inf)
    ok = top >= 0
    top1[ok] = np.hypot(*(database.positions[top[ok], :2] - t[ok, :2, 3]).T)
    used = runner.uses_odometry
    summary = {
        "mode": mode,
        "odometry": ("none" if odometry is None else "yes") if used else None,
        **track_summary(estimates, t, threshold_m=threshold_m, top1_error_m=top1),
        **mode_figures(runner, estimates, t, threshold_m),
    }
    if used and odometry is None:
        summary["odometry_note"] = "no odometry: the filter's random walk tracks worse"
    if estimator.calibration_warning:
        summary["calibration_warning"] = estimator.calibration_warning
    return estimates, summary


def mode_figures(
    mode: LocalizationMode,
    estimates: list[PoseEstimate],
    truth: np.ndarray,
    threshold_m: float,
) -> dict[str, Any]:
    """A gated mode's figures (none for a mode without a gate): the gate's sweep
    (``precision_curve``, ``fix_ratio_at_precision_99``) and the off-map probability
    (median, 95th percentile, and on frames without ground truth: off the map, where the
    stream has such frames)."""
    rule = mode.gate_rule()
    if rule is None:
        return {}
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
