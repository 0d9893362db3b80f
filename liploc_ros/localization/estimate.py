"""Top-k map matches -> a pose estimate fit for robot_localization, or an honest "no fix".

The pose is the best match's pose: retrieval picks a place, it does not interpolate between
places, and averaging poses of two different streets would put the robot in a building.
What the other matches tell is how far to trust that pick:

- **Weights.** ``w_i = softmax((s_i - s_best) / tau)`` over the top-k scores. In cosine
  mode (default) ``tau = temperature * |query| * |best entry|``: score gaps are measured in
  cosine-similarity units, so one temperature fits every model (raw dot products of
  unnormalised LIP-Loc embeddings run to the hundreds, cosines of the Norm variant to 1),
  and weak matches with close scores share the weight instead of the best taking it all.
  With the default 0.05, a match whose cosine is 0.05 below the best's weighs ``1/e`` of
  it. Absolute mode takes ``tau = temperature`` in raw score units.
- **Covariance.** The weighted second moment of the matches' pose differences *about the
  best match* (not about their mean: the estimate is the best match, so a second match far
  away is an error the estimate may have), over x y z roll pitch yaw, plus the squared
  floors on the diagonal. The floors make it positive definite always and say what no spread
  of matches can show: place recognition tells a place to within a few metres. Angle
  differences come from the relative rotation ``R_i R_best^T`` decomposed by scipy
  (intrinsic z-y'-x'', i.e. yaw about the map's z first), so they are wrapped to
  (-pi, pi]: headings of 179 deg and -179 deg differ by 2 deg, not 358.
- **Spread.** ``sqrt(sum_i w_i d_i^2)`` with ``d_i`` the ground (x, y) distance from match i
  to the best: the weighted RMS disagreement. Above ``max_spread_m`` -> no fix.
- **Headings.** A map may hold several entries per keyframe, one per crop heading (the
  same place seen looking forward, back, ...). Given their ``keyframes``, the estimate
  counts ``top_k`` *places*: every retrieved crop of the ``top_k`` best keyframes enters,
  so the crops of one place back each other up (ground distance 0) instead of competing,
  and a second heading that scores nearly as well as the best widens the yaw variance
  rather than the position's.
- **Confidence.** The weight of the matches within ``agree_radius_m`` (ground distance) of
  the best, the best included: 1 when every weighty match points to the same place, about
  1/2 for a tie between two places, towards 1/k when the k matches scatter. It grows as the
  best score pulls away from disagreeing matches, and falls as one of them gains. It
  measures ambiguity among the top-k, not absolute match quality (a confidently wrong
  match scores 1): ``min_score`` is the gate for the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.errors import MapError
from liploc_ros.localization.config import LocalizerConfig, TemperatureMode

#: reasons a frame gets no fix
NO_MATCH = "no match"
LOW_SCORE = "low score"
DISAGREE = "matches disagree"
AMBIGUOUS = "ambiguous"
#: the sequence localizer's reasons: no track yet, track lost, mode too weak or too wide
INITIALIZING = "initializing"
LOST = "lost"
UNCERTAIN = "uncertain"
REASONS = (NO_MATCH, LOW_SCORE, DISAGREE, AMBIGUOUS, INITIALIZING, LOST, UNCERTAIN)

#: smallest temperature, so that a best score of 0 still gives finite weights
_MIN_TAU = 1e-9


@dataclass(frozen=True)
class PoseEstimate:
    """One camera frame's localization result."""

    #: the input image's stamp (s)
    stamp: float
    #: a fix (True) or "no fix"
    ok: bool
    #: "" when ok, else why not (one of :data:`REASONS`)
    reason: str
    #: 4 x 4 ``T_map_lidar`` of the best match (the map keyframe's LiDAR pose); None without fix
    pose: np.ndarray | None
    #: 6 x 6 over x y z roll pitch yaw (m, rad; ROS row-major order); None without fix
    covariance: np.ndarray | None
    #: 0..1, see the module docstring
    confidence: float
    #: best raw score (NaN when nothing was retrieved)
    score: float
    #: retrieved map entry indices, best first (-1: the map has fewer entries)
    indices: np.ndarray
    #: their scores
    scores: np.ndarray
    #: per stage: preprocess, encode, search, estimate, total (and any stage a caller added)
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: weighted RMS ground distance (m) of the matches from the best one
    spread_m: float = float("nan")
    #: the softmax weights of the matches used (aligned with the first len(weights) indices)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the best match's pose whether or not it made a fix (for evaluation and diagnostics);
    #: in sequence mode the posterior mode's pose
    best_pose: np.ndarray | None = None
    #: sequence mode: the filter's state ("initializing", "tracking", "lost"); None: single
    state: str | None = None

    @property
    def best_index(self) -> int:
        """The best match's map entry (-1 when nothing was retrieved)."""
        return int(self.indices[0]) if len(self.indices) else -1


def score_weights(scores: np.ndarray, config: LocalizerConfig, scale: float = 1.0) -> np.ndarray:
    """Softmax weights of ``scores``; ``scale`` is |query| * |best entry| (cosine mode)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    best = float(s.max())
    tau = config.temperature
    if config.temperature_mode == TemperatureMode.COSINE:
        tau *= float(scale)
    z = np.exp((s - best) / max(tau, _MIN_TAU))
    return z / z.sum()


def pose_deltas(poses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(k, 6) differences x y z roll pitch yaw of ``poses`` from ``reference`` (angles wrapped,
    in the map frame)."""
    poses = np.asarray(poses, dtype=np.float64)
    out = np.empty((len(poses), 6))
    out[:, :3] = poses[:, :3, 3] - reference[:3, 3]
    relative = Rotation.from_matrix(poses[:, :3, :3] @ reference[:3, :3].T)
    ypr = relative.as_euler("ZYX")  # yaw, pitch, roll, each in (-pi, pi]
    out[:, 3:] = ypr[:, ::-1]
    return out


def weighted_covariance(
    deltas: np.ndarray, weights: np.ndarray, floors: tuple[float, ...]
) -> np.ndarray:
    """Second moment of ``deltas`` about zero plus the squared floors: 6 x 6, SPD."""
    d = np.asarray(deltas, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    cov = (d * w[:, None]).T @ d
    cov = 0.5 * (cov + cov.T)
    cov[np.diag_indices(6)] += np.square(floors)
    return cov


def estimate_pose(
    indices: np.ndarray,
    scores: np.ndarray,
    poses: np.ndarray,
    stamp: float,
    config: LocalizerConfig,
    *,
    scale: float = 1.0,
    keyframes: np.ndarray | None = None,
) -> PoseEstimate:
    """The estimate from retrieved entries, their scores and their 4 x 4 poses.

    Only the ``config.top_k`` best valid matches (index >= 0, finite score and pose) enter
    the estimate, or with ``keyframes`` (each entry's keyframe id) every valid crop of the
    ``top_k`` best keyframes; the result keeps every entry given, sorted best first (invalid
    ones last). ``scale``: |query| * |best entry's embedding| for the cosine temperature (1
    for L2-normalised embeddings).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ps = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if not len(idx) == len(sc) == len(ps):
        raise MapError(
            f"estimate: {len(idx)} indices, {len(sc)} scores and {len(ps)} poses do not match"
        )
    valid = (idx >= 0) & np.isfinite(sc) & np.isfinite(ps).reshape(len(ps), -1).all(axis=1)
    # best first, unusable entries last (FAISS already sorts; a hand-made list may not)
    order = np.argsort(-np.where(valid, sc, -np.inf), kind="stable")
    idx, sc, ps, valid = idx[order], sc[order], ps[order], valid[order]
    if keyframes is None:
        use = np.flatnonzero(valid)[: config.top_k]
    else:
        kf = np.asarray(keyframes, dtype=np.int64).reshape(-1)
        if len(kf) != len(order):
            raise MapError(f"estimate: {len(kf)} keyframe ids for {len(order)} entries")
        use = best_places(kf[order], valid, config.top_k)
    kept_idx = idx
    kept_sc = sc.astype(np.float32)
    if use.size == 0:
        return PoseEstimate(float(stamp), False, NO_MATCH, None, None, 0.0, float("nan"),
                            kept_idx, kept_sc)  # fmt: skip
    weights = score_weights(sc[use], config, scale)
    best = ps[use[0]]
    deltas = pose_deltas(ps[use], best)
    ground = np.hypot(deltas[:, 0], deltas[:, 1])
    spread = float(np.sqrt(np.sum(weights * ground**2)))
    confidence = float(np.clip(weights[ground <= config.agree_radius_m].sum(), 0.0, 1.0))
    best_score = float(sc[use[0]])
    if config.min_score is not None and best_score < config.min_score:
        reason = LOW_SCORE
    elif spread > config.max_spread_m:
        reason = DISAGREE
    elif confidence < config.min_confidence:
        reason = AMBIGUOUS
    else:
        reason = ""
    ok = not reason
    cov = weighted_covariance(deltas, weights, config.std_floors) if ok else None
    return PoseEstimate(
        stamp=float(stamp),
        ok=ok,
        reason=reason,
        pose=best.copy() if ok else None,
        covariance=cov,
        confidence=confidence,
        score=best_score,
        indices=kept_idx,
        scores=kept_sc,
        spread_m=spread,
        weights=weights,
        best_pose=best.copy(),
    )


def best_places(keyframes: np.ndarray, valid: np.ndarray, top_k: int) -> np.ndarray:
    """Positions (into best-first arrays) of the valid entries whose keyframe is one of the
    ``top_k`` best keyframes, best first."""
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        return rows
    kf = keyframes[rows]
    _, first = np.unique(kf, return_index=True)
    chosen = kf[np.sort(first)[:top_k]]
    return rows[np.isin(kf, chosen)]


def message_fields(estimate: PoseEstimate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fix as the fields of a geometry_msgs/PoseWithCovariance: position (3,), orientation
    quaternion (4,) x y z w, covariance (36,) row-major over x y z roll pitch yaw."""
    if not estimate.ok or estimate.pose is None or estimate.covariance is None:
        raise ValueError(f"no fix at stamp {estimate.stamp:.9f} ({estimate.reason}): no pose")
    T = estimate.pose
    quat = Rotation.from_matrix(T[:3, :3]).as_quat()
    return T[:3, 3].copy(), quat, np.ascontiguousarray(estimate.covariance).reshape(36)
