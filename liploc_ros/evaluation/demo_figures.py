"""The demo's figures: what the node published, matched by stamp to a bag's ground truth.

The node answers every frame it localizes on ``~/markers`` (an ARROW at the best match,
stamped with the image's stamp, fix or not) and publishes ``~/pose`` only for frames with
a fix; it skips frames when it is slower than the camera. The figures, and what they count:

- **Recall@1 at 20 m** (the LIP-Loc protocol): localized frames whose best match lies
  within 20 m (ground plane) of the truth, over all frames the node localized. Frames the
  node dropped are not counted: they were never tried.
- **fix ratio**: poses published / frames localized; **fix precision**: poses within 20 m
  / poses; **median error**: ground distance of the published poses from the truth.
- **latency**: image published -> the node's answer for it received, both on this
  machine's clock.
- **single-frame vs sequence** (:func:`pose_figures`, :func:`side_by_side`): the same
  figures of two sets of poses over the same localized frames, the node's (sequence mode,
  with odometry) and each frame's own estimate, plus the wrong fixes (beyond the threshold)
  and the distance driven to the first fix.
- **chance**: the Recall@1 of a uniformly random map entry (mean fraction of map entries
  within 20 m of each played frame's true position).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SUCCESS_THRESHOLD_M = 20.0


def stamp_key(seconds: float) -> int:
    """A stamp as integer microseconds: a dictionary key robust to float rounding."""
    return round(float(seconds) * 1e6)


@dataclass(frozen=True)
class Received:
    """A position the node published for one image (a pose or a best match)."""

    stamp: float
    #: x, y, z in the map frame
    position: np.ndarray
    #: image published -> message received (s); None when the publish time is unknown
    latency_s: float | None = None


@dataclass(frozen=True)
class DemoFigures:
    threshold_m: float
    frames_played: int
    frames_localized: int
    poses: int
    recall_at_1: float
    median_top1_error_m: float
    fix_ratio: float
    fix_precision: float
    median_error_m: float
    latency_ms: dict[str, float]
    chance: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


def _errors(received: Sequence[Received], truth: Mapping[int, np.ndarray]) -> np.ndarray:
    """Ground distance of each message from the truth at its stamp (NaN without truth)."""
    out = np.full(len(received), np.nan)
    for i, item in enumerate(received):
        gt = truth.get(stamp_key(item.stamp))
        if gt is not None:
            out[i] = float(np.hypot(*(np.asarray(item.position)[:2] - gt[:2])))
    return out


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def evaluate_run(
    matches: Sequence[Received],
    poses: Sequence[Received],
    truth: Mapping[int, np.ndarray],
    map_positions: np.ndarray,
    *,
    frames_played: int,
    frames_localized: int,
    played_stamps: Sequence[float] = (),
    threshold_m: float = SUCCESS_THRESHOLD_M,
) -> DemoFigures:
    """The figures of the module docstring from the best match of every localized frame
    (``matches``) and the published fixes (``poses``). ``played_stamps``: the images played
    (chance is computed over their true positions; over all of ``truth`` when empty)."""
    localized = max(int(frames_localized), len(matches))
    top1 = _errors(matches, truth)
    fixes = _errors(poses, truth)
    latencies = np.array([m.latency_s for m in matches if m.latency_s is not None]) * 1e3
    if latencies.size:
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        latency = {"p50": float(p50), "p90": float(p90), "p99": float(p99)}
    else:
        latency = {"p50": math.nan, "p90": math.nan, "p99": math.nan}
    keys = [stamp_key(s) for s in played_stamps] or list(truth)
    gt_xy = np.array([truth[k][:2] for k in keys if k in truth]).reshape(-1, 2)
    map_xy = np.asarray(map_positions, np.float64)[:, :2]
    if len(gt_xy) and len(map_xy):
        dist = np.linalg.norm(gt_xy[:, None, :] - map_xy[None, :, :], axis=2)
        chance = float((dist < threshold_m).mean())
    else:
        chance = math.nan
    return DemoFigures(
        threshold_m=float(threshold_m),
        frames_played=int(frames_played),
        frames_localized=localized,
        poses=len(poses),
        recall_at_1=float((top1 < threshold_m).sum() / localized) if localized else math.nan,
        median_top1_error_m=_median(top1),
        fix_ratio=len(poses) / localized if localized else math.nan,
        fix_precision=float((fixes < threshold_m).mean()) if len(poses) else math.nan,
        median_error_m=_median(fixes),
        latency_ms=latency,
        chance=chance,
    )


@dataclass(frozen=True)
class PoseFigures:
    """One mode's poses over the frames the node localized."""

    frames: int
    poses: int
    fix_ratio: float
    #: poses within the threshold, and within 5 m, as shares of the poses
    fix_precision: float
    fix_precision_5m: float
    median_error_m: float
    #: poses beyond the threshold
    wrong_fixes: int
    #: distance driven (along the played frames' truth) before the first pose
    first_fix_distance_m: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


def pose_figures(
    poses: Sequence[Received],
    truth: Mapping[int, np.ndarray],
    played_stamps: Sequence[float],
    frames: int,
    threshold_m: float = SUCCESS_THRESHOLD_M,
) -> PoseFigures:
    """The figures of ``poses`` for ``frames`` localized frames (see the module docstring)."""
    err = _errors(poses, truth)
    judged = err[np.isfinite(err)]

    def share(ok: np.ndarray) -> float:
        return float(ok.mean()) if judged.size else math.nan

    keys = [k for k in map(stamp_key, played_stamps) if k in truth]
    xy = np.array([truth[k][:2] for k in keys]).reshape(-1, 2)
    steps = np.hypot(*np.diff(xy, axis=0).T) if len(xy) > 1 else np.zeros(0)
    driven = dict(zip(keys, np.concatenate([[0.0], np.cumsum(steps)])[: len(keys)], strict=True))
    firsts = [driven[k] for k in (stamp_key(p.stamp) for p in poses) if k in driven]
    return PoseFigures(
        frames=int(frames),
        poses=len(poses),
        fix_ratio=len(poses) / frames if frames else math.nan,
        fix_precision=share(judged < threshold_m),
        fix_precision_5m=share(judged < 5.0),
        median_error_m=_median(err),
        wrong_fixes=int((judged >= threshold_m).sum()),
        first_fix_distance_m=float(min(firsts)) if firsts else math.nan,
    )


def side_by_side(
    columns: Mapping[str, PoseFigures], threshold_m: float = SUCCESS_THRESHOLD_M
) -> list[str]:
    """The figures of several modes as a table, one line per figure."""
    t = f"{threshold_m:g}"

    def fmt(value: float, spec: str, unit: str = "") -> str:
        return "n/a" if not math.isfinite(value) else format(value, spec) + unit

    rows: list[tuple[str, Callable[[PoseFigures], str]]] = [
        ("fix ratio", lambda f: fmt(f.fix_ratio, ".3f")),
        (f"fixes within {t} m", lambda f: fmt(f.fix_precision, ".3f")),
        ("fixes within 5 m", lambda f: fmt(f.fix_precision_5m, ".3f")),
        ("median error", lambda f: fmt(f.median_error_m, ".1f", " m")),
        (f"wrong fixes (> {t} m)", lambda f: str(f.wrong_fixes)),
        ("first fix after", lambda f: fmt(f.first_fix_distance_m, ".0f", " m")),
    ]
    width = max(16, *(len(name) + 2 for name in columns))
    head = "".join(name.rjust(width) for name in columns)
    lines = [f"  {'':<22}{head}"]
    for label, cell in rows:
        lines.append(f"  {label:<22}" + "".join(cell(f).rjust(width) for f in columns.values()))
    return lines


def route_points(
    truth: Mapping[int, np.ndarray],
    played_stamps: Sequence[float],
    matches: Sequence[Received],
    poses: Sequence[Received],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth_xy, placed_xy, fixed) of the played frames with ground truth, for
    :func:`~liploc_ros.evaluation.route_figure.save_route_figure`: placed where the node
    published a pose, else at its best match (what retrieval alone said: in sequence mode the
    filter may rightly ignore it), NaN where the node did not localize it (dropped)."""
    best = {stamp_key(m.stamp): np.asarray(m.position)[:2] for m in matches}
    fixed = {stamp_key(p.stamp): np.asarray(p.position)[:2] for p in poses}
    keys = [k for k in map(stamp_key, played_stamps) if k in truth]
    truth_xy = np.array([truth[k][:2] for k in keys], np.float64).reshape(-1, 2)
    nan = np.full(2, np.nan)
    placed = np.array([fixed.get(k, best.get(k, nan)) for k in keys], np.float64).reshape(-1, 2)
    return truth_xy, placed, np.array([k in fixed for k in keys], bool)
