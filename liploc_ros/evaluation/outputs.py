"""The files of a localization run: trajectories (TUM, KITTI), per-frame table, summary.

Every pose written is the estimate, ``T_map_lidar`` of the best-matching map keyframe, in
the map's frame. Frames without a fix have no pose to write:

- ``poses_tum.txt``: ``timestamp tx ty tz qx qy qz qw``, one line per fix (TUM allows gaps:
  lines carry their stamp).
- ``poses_kitti.txt``: the 3 x 4 row-major matrix, one line per fix; KITTI lines carry no
  stamp, so ``poses_kitti_frames.txt`` gives the source frame index of each line. No-fix
  frames are skipped, not filled with the previous fix: a repeated pose would be a claim
  the localizer did not make.
- ``ground_truth_tum.txt``: the true poses of the frames that have one (for evo & co).
- ``frames.csv``: every frame, fix or not (see :data:`FRAME_COLUMNS`).
- ``summary.json``: the figures of :func:`liploc_ros.evaluation.summary.summarize` plus
  what produced them.

All files are written atomically.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.evaluation.summary import ground_distances, retrieved_positions, truth_positions
from liploc_ros.geometry import yaw_of
from liploc_ros.io_utils import atomic_open, write_text_atomic
from liploc_ros.localization.localizer import STAGES
from liploc_ros.localization.run import FrameRecord
from liploc_ros.mapdb import MapDatabase

#: the columns of frames.csv; empty cells: no value (no ground truth, nothing retrieved)
FRAME_COLUMNS = (
    "index",  # frame index in the source
    "stamp",  # s
    "ok",  # 1 fix, 0 no fix
    "reason",  # why no fix ("" with a fix)
    "score",  # best raw score
    "confidence",  # 0..1
    "spread_m",  # weighted RMS ground distance of the top-k from the best match
    "best_entry",  # map entry of the best match (-1: none)
    "match_x", "match_y", "match_z", "match_yaw_deg",  # the best match's pose (fix or not)
    "gt_x", "gt_y", "gt_z",  # ground truth position
    "error_m",  # ground distance best match <-> ground truth
    "latency_ms",  # total per frame (amortised over its batch when batched)
    *(f"{stage}_ms" for stage in STAGES),
    "top_entries",  # retrieved map entries, best first, space-separated
    "top_scores",  # their scores
)  # fmt: skip


def _num(value: float, fmt: str = ".6f") -> str:
    return "" if value is None or not math.isfinite(value) else format(value, fmt)


def _quaternion(T: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(np.asarray(T)[:3, :3]).as_quat()


def tum_line(stamp: float, T: np.ndarray) -> str:
    t = np.asarray(T)[:3, 3]
    values = [*t, *_quaternion(T)]
    return f"{stamp:.9f} " + " ".join(f"{v:.9g}" for v in values)


def kitti_line(T: np.ndarray) -> str:
    return " ".join(f"{v:.9e}" for v in np.asarray(T, np.float64)[:3, :4].reshape(-1))


def _write_lines(path: Path, lines: Iterable[str]) -> Path:
    with atomic_open(path, "w") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def write_trajectories(out: Path, records: Sequence[FrameRecord]) -> list[Path]:
    """poses_tum.txt, poses_kitti.txt, poses_kitti_frames.txt and, where there is ground
    truth, ground_truth_tum.txt."""
    fixes = [
        (r, r.estimate.pose) for r in records if r.estimate.ok and r.estimate.pose is not None
    ]
    paths = [
        _write_lines(out / "poses_tum.txt", (tum_line(r.stamp, T) for r, T in fixes)),
        _write_lines(out / "poses_kitti.txt", (kitti_line(T) for _, T in fixes)),
        _write_lines(out / "poses_kitti_frames.txt", (str(r.index) for r, _ in fixes)),
    ]
    truth = [(r.stamp, r.truth) for r in records if r.truth is not None]
    if truth:
        paths.append(
            _write_lines(out / "ground_truth_tum.txt", (tum_line(t, T) for t, T in truth))
        )
    return paths


def write_frames_csv(path: Path, records: Sequence[FrameRecord], database: MapDatabase) -> Path:
    """One row per frame, the columns of :data:`FRAME_COLUMNS`."""
    truth = truth_positions(records)
    errors = ground_distances(truth, retrieved_positions(records, database))
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FRAME_COLUMNS)
        for row, rec in enumerate(records):
            est = rec.estimate
            match = est.best_pose
            if match is not None:
                yaw = math.degrees(float(yaw_of(match)))
                match_cells = [_num(v) for v in (*match[:3, 3], yaw)]
            else:
                match_cells = [""] * 4
            error = errors[row, 0] if errors.shape[1] else float("nan")
            writer.writerow(
                [
                    rec.index,
                    f"{est.stamp:.9f}",
                    int(est.ok),
                    est.reason,
                    _num(est.score),
                    _num(est.confidence),
                    _num(est.spread_m, ".3f"),
                    est.best_index,
                    *match_cells,
                    *(_num(v) for v in truth[row]),
                    _num(error, ".3f"),
                    _num(est.timings_ms.get("total", float("nan")), ".3f"),
                    *(_num(est.timings_ms.get(s, float("nan")), ".3f") for s in STAGES),
                    " ".join(str(int(i)) for i in est.indices),
                    " ".join(_num(float(s)) for s in est.scores),
                ]
            )
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """summary.json (non-finite numbers become null)."""
    write_text_atomic(path, json.dumps(_json_safe(summary), indent=2) + "\n")
    return path
