"""How well a run of the localizer did, where the frames have ground truth.

Two questions, kept apart:

- **Retrieval** (the LIP-Loc protocol): Recall@K at a distance threshold (20 m) over every
  frame with ground truth, fix or no fix: a frame succeeds at K when one of its K best map
  scans (keyframes: the crops of one scan count once, as in ``liploc eval``) lies within the
  threshold of its true position. Distances are in the ground plane
  (x, y of ``T_map_lidar``, z up), the correct variant of the authors' evaluation (see
  :mod:`liploc_ros.evaluation.retrieval`, whose :class:`Retrieval` computes the recall).
- **Published poses**: how many frames got a fix, what fraction of the fixes lies within the
  threshold, and the median position error (ground distance between the estimate, i.e. the
  best match's pose, and the true position).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from liploc_ros.evaluation.retrieval import Retrieval
from liploc_ros.localization.estimate import REASONS, PoseEstimate
from liploc_ros.localization.localizer import STAGES
from liploc_ros.localization.run import FrameRecord
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.places import RECALL_COUNTS, first_of_each_place

#: the paper's success threshold (m)
SUCCESS_THRESHOLD_M = 20.0
#: the K of the reported Recall@K
RECALL_KS = (1, 5, 10)


def retrieved_positions(
    records: Sequence[FrameRecord], database: MapDatabase, *, places: bool = False
) -> np.ndarray:
    """(N, K, 3) positions of every frame's retrieved entries (NaN where none), K the
    deepest retrieval of the run; with ``places``, of its retrieved distinct scans (the
    best crop of each keyframe, best first: the ranking Recall@K counts)."""
    depth = max((len(r.estimate.indices) for r in records), default=0)
    idx = np.full((len(records), depth), -1, np.int64)
    for row, rec in enumerate(records):
        found = np.asarray(rec.estimate.indices, np.int64)
        found = found[found >= 0]
        if places:
            found = found[first_of_each_place(database.keyframes[found])]
        idx[row, : len(found)] = found
    out = np.full((*idx.shape, 3), np.nan)
    valid = idx >= 0
    out[valid] = database.positions[idx[valid]]
    return out


def truth_positions(records: Sequence[FrameRecord]) -> np.ndarray:
    """(N, 3) true positions (NaN rows without ground truth)."""
    out = np.full((len(records), 3), np.nan)
    for row, rec in enumerate(records):
        if rec.truth is not None:
            out[row] = np.asarray(rec.truth, np.float64)[:3, 3]
    return out


def route_points(
    records: Sequence[FrameRecord], database: MapDatabase
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth_xy, placed_xy, fixed) of the records for
    :func:`~liploc_ros.evaluation.route_figure.save_route_figure`: a fix where it was
    published (the sequence filter's pose is no map entry's), else the best match."""
    truth = truth_positions(records)[:, :2]
    matches = retrieved_positions(records, database)
    placed = matches[:, 0, :2] if matches.shape[1] else np.full((len(records), 2), np.nan)
    fixed = np.array([r.estimate.ok and r.estimate.pose is not None for r in records], bool)
    for i, r in enumerate(records):
        if fixed[i]:
            placed[i] = np.asarray(r.estimate.pose)[:2, 3]
    return truth, placed, fixed


def ground_distances(truth_xyz: np.ndarray, retrieved_xyz: np.ndarray) -> np.ndarray:
    """(N, K) ground-plane distances; inf where an entry is missing, NaN rows without truth."""
    d = np.hypot(
        retrieved_xyz[..., 0] - truth_xyz[:, None, 0],
        retrieved_xyz[..., 1] - truth_xyz[:, None, 1],
    )
    missing = np.isnan(retrieved_xyz[..., 0]) & ~np.isnan(truth_xyz[:, None, 0])
    d[missing] = np.inf
    return d


def _stats(values: np.ndarray) -> dict[str, float | None]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    p50, p99 = np.percentile(v, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(v.mean()), "max": float(v.max())}


def latency_stats(estimates: Sequence[PoseEstimate]) -> dict[str, dict[str, float | None]]:
    """p50 / p99 / mean / max (ms) of the total and of each stage."""
    names = [*STAGES, "total"]
    return {
        name: _stats(np.array([e.timings_ms.get(name, np.nan) for e in estimates]))
        for name in names
    }


def summarize(
    records: Sequence[FrameRecord],
    database: MapDatabase,
    *,
    threshold_m: float = SUCCESS_THRESHOLD_M,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, Any]:
    """The run's figures as plain data (summary.json); None where a figure is undefined."""
    estimates = [r.estimate for r in records]
    ok = np.array([e.ok for e in estimates], bool)
    reasons = {reason: sum(e.reason == reason for e in estimates) for reason in REASONS}
    out: dict[str, Any] = {
        "frames": len(records),
        "fixes": int(ok.sum()),
        "fix_rate": float(ok.mean()) if len(ok) else None,
        "no_fix_reasons": {k: v for k, v in reasons.items() if v},
        "mean_confidence": float(np.mean([e.confidence for e in estimates]))
        if estimates
        else None,
        "latency_ms": latency_stats(estimates),
    }
    truth = truth_positions(records)
    has_truth = ~np.isnan(truth[:, 0])
    out["frames_with_ground_truth"] = int(has_truth.sum())
    if not has_truth.any():
        return out
    dist = ground_distances(truth, retrieved_positions(records, database, places=True))
    dist = dist[has_truth]
    retrieval = Retrieval(
        indices=np.zeros(dist.shape, np.int64),
        scores=np.zeros(dist.shape, np.float32),
        distances=dist,
        threshold_m=float(threshold_m),
    )
    depth = dist.shape[1]
    top1 = dist[:, 0] if depth else np.full(len(dist), np.inf)
    fixed = ok[has_truth]
    # a fix's error is where it was published: the best match (single) or the filter's pose
    placed = np.array(
        [e.pose[:2, 3] if e.ok and e.pose is not None else (np.nan, np.nan) for e in estimates]
    ).reshape(-1, 2)[has_truth]
    fix_err = np.hypot(*(placed[fixed] - truth[has_truth][fixed, :2]).T)
    out.update(
        {
            "threshold_m": float(threshold_m),
            "distance": "ground (x, y of T_map_lidar)",
            "recall": {f"@{k}": retrieval.recall_at(k) if k <= depth else None for k in ks},
            "recall_counts": RECALL_COUNTS,
            "median_error_m": float(np.median(fix_err)) if fix_err.size else None,
            "median_top1_error_m": float(np.median(top1)),
            "fixes_with_ground_truth": int(fixed.sum()),
            "fix_precision": float((fix_err < threshold_m).mean()) if fix_err.size else None,
            "correct_fix_rate": float((fix_err < threshold_m).sum() / len(fixed)),
        }
    )
    return out
