"""``liploc eval --queries``: the query drive localized in the map drive's embeddings.

The map is built from the embeddings the evaluation already computed (every map frame, at
each crop heading), calibrated as ``liploc build-map`` calibrates one (from the map drive's
own camera frames) or from a labelled drive of another day, and the query drive runs
through the localizer mode (:func:`~liploc_ros.evaluation.stream.evaluate_stream`) with its
odometry. The figures are the ones ``liploc localize`` reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.datasets.base import IndexedSource
from liploc_ros.errors import ConfigError
from liploc_ros.evaluation.stream import evaluate_stream
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.mapping.headings import turn_pose

__all__ = ["CALIBRATION_KEYS", "embedded_map", "localize_queries"]

#: the calibration's figures eval's summary.json repeats
CALIBRATION_KEYS = ("method", "source", "frames", "match_mean", "match_std", "null_mean",
                    "null_std", "null_best_median", "correlation_length_m", "evidence_scale",
                    "frame_floor", "check")  # fmt: skip


def embedded_map(result: Any, maps: IndexedSource, loaded: Any) -> MapDatabase:
    """The map of the evaluation's map embeddings (``result``: an EvalResult), each entry at
    its frame's pose turned by its crop heading, keyframe by keyframe."""
    assert maps.poses is not None  # the evaluation needed them
    info = MapInfo(
        model_fingerprint=loaded.fingerprint,
        model_name=loaded.model_config.name,
        embed_dim=loaded.embed_dim,
        normalized=bool(loaded.model_config.normalize),
        lidar=loaded.preprocess.lidar,
        sources=(maps.name,),
    )
    frames = result.db_frames
    poses = np.stack(
        [turn_pose(p, h) for p, h in zip(maps.poses[frames], result.db_heading_deg, strict=True)]
    )
    return MapDatabase.from_poses(
        result.lidar, poses, maps.stamps[frames], info, heading_deg=result.db_heading_deg,
        keyframes=np.unique(frames, return_inverse=True)[1],
    )  # fmt: skip


def localize_queries(
    result: Any,
    maps: Any,
    queries: Any,
    embedder: Any,
    *,
    mode: str,
    threshold_m: float,
    calibration_source: Any,
    same_drive: bool,
    calibration_frames: int = 600,
) -> tuple[dict[str, Any], dict | None, str]:
    """(figures, precision curve or None, why the map is uncalibrated or "") of the query
    drive ``queries`` in the map of ``maps``; ``calibration_source``: the labelled drive
    the map is calibrated on (``same_drive``: it is the map's own drive)."""
    from liploc_ros.mapping.calibration_drive import calibrate_map

    if not isinstance(maps, IndexedSource) or not isinstance(queries, IndexedSource):
        raise ConfigError("--mode needs random-access sources (KITTI, KITTI-360, synthetic)")
    assert queries.poses is not None
    db = embedded_map(result, maps, embedder.loaded)
    calibration, why_not = calibrate_map(
        db, calibration_source, embedder, same_drive=same_drive, max_frames=calibration_frames
    )
    rows = result.query_frames
    odometry = queries.odometry
    _, figures = evaluate_stream(
        db, result.camera, queries.poses[rows], queries.stamps[rows],
        None if odometry is None else odometry[rows], mode=mode, threshold_m=threshold_m,
    )  # fmt: skip
    figures["calibration"] = (
        None if calibration is None else {k: calibration.to_dict()[k] for k in CALIBRATION_KEYS}
    )
    return figures, figures.pop("precision_curve", None), why_not or ""
