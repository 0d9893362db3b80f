"""Figures of a localized drive that a vehicle stack cares about, for both modes alike.

A pose consumer (robot_localization, AMCL's initial pose, nav2) sees the published fixes
only, so the figures are about those: how many frames got one (``fix_ratio``), how many of
them are right (``fix_precision_20m``, ``fix_precision_5m``), how far off they are (median
and 95th percentile ground error, median yaw error) and how far the vehicle drove before
the first one (``first_fix_distance_m``, along the true path). ``recall_at_1`` is the
single-frame retrieval's top-1 success at the threshold, kept for reference.

:func:`relock` measures recovery: after an event (a kidnap, re-entering the map), the
distance driven until the fixes are right again, and the wrong fixes in between.

:func:`precision_curve` sweeps the sequence filter's gate target over a run (the filter's
particles do not depend on it) and :func:`fix_ratio_at_precision` reads the fix ratio a
precision allows off it, as place-recognition results are compared (recall at 99%
precision).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from liploc_ros.geometry import wrap, yaw_of
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.fix_gate import GateRule, replay_fixes


def travelled(truth: np.ndarray) -> np.ndarray:
    """(N,) distance (m) driven from the first frame, along the true ground positions;
    a jump in the ground truth (a kidnap) counts as no travel."""
    xy = np.asarray(truth, np.float64)[:, :2, 3]
    step = np.hypot(*np.diff(xy, axis=0).T) if len(xy) > 1 else np.zeros(0)
    step = np.where(np.isfinite(step) & (step < 20.0), step, 0.0)
    return np.concatenate([[0.0], np.cumsum(step)])


def fix_errors(
    estimates: Sequence[PoseEstimate], truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok (N,) bool, ground error (N,) m, yaw error (N,) deg); NaN errors where no fix or no
    truth."""
    t = np.asarray(truth, np.float64)
    ok = np.array([e.ok and e.pose is not None for e in estimates], bool)
    err = np.full(len(estimates), np.nan)
    yaw = np.full(len(estimates), np.nan)
    for i, e in enumerate(estimates):
        if not ok[i] or not np.isfinite(t[i]).all():
            continue
        assert e.pose is not None
        err[i] = math.hypot(e.pose[0, 3] - t[i, 0, 3], e.pose[1, 3] - t[i, 1, 3])
        yaw[i] = abs(math.degrees(float(wrap(yaw_of(e.pose) - yaw_of(t[i])))))
    return ok, err, yaw


def _median(values: np.ndarray) -> float | None:
    v = values[np.isfinite(values)]
    return float(np.median(v)) if v.size else None


def track_summary(
    estimates: Sequence[PoseEstimate],
    truth: np.ndarray,
    *,
    threshold_m: float = 20.0,
    top1_error_m: np.ndarray | None = None,
) -> dict[str, Any]:
    """The keys of summary.json that tooling reads (see the module docstring)."""
    ok, err, yaw = fix_errors(estimates, truth)
    judged = ok & np.isfinite(err)
    dist = travelled(truth)
    first = int(np.argmax(ok)) if ok.any() else None
    out: dict[str, Any] = {
        "frames": len(estimates),
        "fix_ratio": float(ok.mean()) if len(ok) else None,
        "fixes": int(ok.sum()),
        "fix_precision_20m": float((err[judged] < threshold_m).mean()) if judged.any() else None,
        "fix_precision_5m": float((err[judged] < 5.0).mean()) if judged.any() else None,
        "wrong_fixes": int((err[judged] >= threshold_m).sum()),
        "median_error_m": _median(err),
        "p95_error_m": float(np.percentile(err[judged], 95)) if judged.any() else None,
        "median_yaw_error_deg": _median(yaw),
        "first_fix_distance_m": float(dist[first]) if first is not None else None,
        "first_fix_error_m": float(err[first]) if first is not None else None,
    }
    if top1_error_m is not None:
        top1 = np.asarray(top1_error_m, np.float64)
        has = np.isfinite(top1) | np.isinf(top1)
        out["recall_at_1"] = float((top1[has] < threshold_m).mean()) if has.any() else None
    return out


def relock(
    estimates: Sequence[PoseEstimate],
    truth: np.ndarray,
    start: int,
    *,
    threshold_m: float = 20.0,
    end: int | None = None,
) -> dict[str, Any]:
    """From frame ``start`` (an event) to ``end``: the distance driven until the first
    right fix (None: never), and the wrong fixes before it."""
    ok, err, _ = fix_errors(estimates, truth)
    dist = travelled(truth)
    stop = len(estimates) if end is None else end
    wrong = 0
    for i in range(start, stop):
        if ok[i] and err[i] < threshold_m:
            return {"relock_distance_m": float(dist[i] - dist[start]), "wrong_fixes": wrong}
        if ok[i]:
            wrong += 1
    return {"relock_distance_m": None, "wrong_fixes": wrong}


#: the gate targets the precision / fix-ratio curve is drawn at
CURVE_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995,
                 0.997, 0.998, 0.999, 0.9995, 0.9999)  # fmt: skip


def precision_curve(
    estimates: Sequence[PoseEstimate],
    truth: np.ndarray,
    rule: GateRule,
    *,
    threshold_m: float = 20.0,
    targets: Sequence[float] = CURVE_TARGETS,
) -> dict[str, list[float | None]]:
    """The sequence filter's fix ratio and precision at each gate target (its decisions
    replayed with ``rule``'s other thresholds, :func:`~liploc_ros.localization.fix_gate.
    replay_fixes`): ``{"target": [...], "fix_ratio": [...], "precision": [...]}`` (precision
    None where no fix)."""
    _, err, _ = fix_errors([dataclasses.replace(e, ok=True, pose=e.best_pose)
                            for e in estimates], truth)  # fmt: skip
    out: dict[str, list[float | None]] = {"target": [], "fix_ratio": [], "precision": []}
    judged = np.isfinite(err)
    for target in targets:
        fixes = replay_fixes(estimates, dataclasses.replace(rule, target_precision=target))
        scored = fixes & judged
        out["target"].append(float(target))
        out["fix_ratio"].append(float(fixes.mean()) if len(fixes) else None)
        out["precision"].append(
            float((err[scored] < threshold_m).mean()) if scored.any() else None
        )
    return out


def fix_ratio_at_precision(curve: dict[str, list[float | None]], precision: float) -> float:
    """The largest fix ratio on ``curve`` whose precision is at least ``precision`` (0 when
    none: no target gave that precision with a fix)."""
    best = 0.0
    for ratio, prec in zip(curve["fix_ratio"], curve["precision"], strict=True):
        if ratio is not None and prec is not None and prec >= precision:
            best = max(best, ratio)
    return best
