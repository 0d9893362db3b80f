"""Top-k map matches -> a pose estimate fit for robot_localization, or an honest "no fix".

The pose is the best match's pose: retrieval picks a place, it does not interpolate between
places, and averaging poses of two different streets would put the robot in a building.
What the other matches tell is how far to trust that pick:

- **Weights.** ``w_i`` proportional to the likelihood ratio of match i's standardised score
  ``z_i`` under the map's calibration (:mod:`~liploc_ros.localization.evidence`): how much
  more likely that score is at the true place than elsewhere. No temperature to tune: the
  calibration says how far apart two scores are.
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
- **Confidence.** The calibrated probability that the frame was taken at the best match's
  place (its matches within ``agree_radius_m``) rather than at any other entry of the map:
  their likelihood ratios over the sum of every entry's, the entries used by the estimate
  counted at theirs, the others at their expected ratio under the null (so a deeper search
  for Recall@K does not change it). A map ten times bigger holds ten times more
  look-alikes, and the same scores give a lower confidence. The fix gate is
  ``confidence >= target_precision``; a model whose scores do not separate places never
  reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.errors import MapError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.mapdb.places import first_of_each_place

#: reasons a frame gets no fix: nothing retrieved, matches far apart, the place not sure
#: enough (its calibrated probability below the target)
NO_MATCH = "no match"
DISAGREE = "matches disagree"
AMBIGUOUS = "ambiguous"
#: the sequence localizer's reasons: no track yet, track lost, mode too wide, probably off
#: the map
INITIALIZING = "initializing"
LOST = "lost"
UNCERTAIN = "uncertain"
OFF_MAP = "off the map"
#: tracking, but this frame's evidence contradicts the tracked place
MISMATCH = "frame mismatch"
REASONS = (NO_MATCH, DISAGREE, AMBIGUOUS, INITIALIZING, LOST, UNCERTAIN, OFF_MAP, MISMATCH)


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
    #: 0..1: single mode, the calibrated probability of the best place (module docstring);
    #: sequence mode, the posterior probability of the filter's dominant mode
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
    #: the softmax weights of the matches used, aligned with :attr:`used`
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the map entries the estimate used, best first (with several crops per keyframe not a
    #: prefix of ``indices``: every crop of the ``top_k`` best keyframes); empty when the
    #: estimate is not a weighted set of matches (the sequence filter's)
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: the best match's pose whether or not it made a fix (for evaluation and diagnostics);
    #: in sequence mode the posterior mode's pose
    best_pose: np.ndarray | None = None
    #: sequence mode: the filter's state ("initializing", "tracking", "lost"); None: single
    state: str | None = None
    #: sequence mode: the posterior probability that the vehicle is at no mapped place the
    #: filter holds (off the map; before the first fix also: not found yet); NaN: single
    offmap_probability: float = float("nan")
    #: sequence mode: what the fix gate read besides ``confidence`` and ``spread_m``: this
    #: frame's untempered evidence at the mode (NaN: single mode)
    frame_evidence: float = float("nan")
    #: sequence mode: the evidence summed over the last few frame steps at the mode, one per
    #: window (:mod:`~liploc_ros.localization.evidence_trail`; NaN: too short a trail)
    window_evidence: tuple[float, ...] = ()

    @property
    def best_index(self) -> int:
        """The best match's map entry (-1 when nothing was retrieved)."""
        return int(self.indices[0]) if len(self.indices) else -1


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
    z: np.ndarray,
    evidence: EvidenceModel,
    entries: int,
    keyframes: np.ndarray | None = None,
    depth: int | None = None,
) -> PoseEstimate:
    """The estimate from retrieved entries, their raw scores, standardised scores ``z`` and
    4 x 4 poses, in a map of ``entries`` entries whose scores mean what ``evidence`` says.

    Only the ``config.top_k`` best valid matches (index >= 0, finite score and pose) enter
    the estimate, or with ``keyframes`` (each entry's keyframe id) every valid crop of the
    ``top_k`` best keyframes; the result keeps every entry given, sorted best first (invalid
    ones last). ``depth``: only the first ``depth`` entries given are considered for the
    estimate (None: all), so that a deeper search for Recall@K decides alike.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    zz = np.asarray(z, dtype=np.float64).reshape(-1)
    ps = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if not len(idx) == len(sc) == len(ps) == len(zz):
        raise MapError(
            f"estimate: {len(idx)} indices, {len(sc)} scores, {len(zz)} z-scores and "
            f"{len(ps)} poses do not match"
        )
    valid = (
        (idx >= 0)
        & np.isfinite(sc)
        & np.isfinite(zz)
        & np.isfinite(ps).reshape(len(ps), -1).all(axis=1)
    )
    # best first, unusable entries last (FAISS already sorts; a hand-made list may not)
    order = np.argsort(-np.where(valid, sc, -np.inf), kind="stable")
    idx, sc, zz, ps, valid = idx[order], sc[order], zz[order], ps[order], valid[order]
    if depth is not None:
        valid &= np.arange(len(valid)) < depth
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
    llr = evidence.llr(zz[use])
    weights = np.exp(llr - llr.max())
    weights /= weights.sum()
    best = ps[use[0]]
    deltas = pose_deltas(ps[use], best)
    ground = np.hypot(deltas[:, 0], deltas[:, 1])
    spread = float(np.sqrt(np.sum(weights * ground**2)))
    place = zz[use][ground <= config.agree_radius_m]
    # over the entries used, the rest at their expected ratio: the same figure however deep
    # the search went (the node, ``liploc localize`` and evaluation search to other depths)
    confidence = evidence.place_probability(place, zz[use], entries)
    if spread > config.max_spread_m:
        reason = DISAGREE
    elif confidence < config.target_precision:
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
        score=float(sc[use[0]]),
        indices=kept_idx,
        scores=kept_sc,
        spread_m=spread,
        weights=weights,
        used=idx[use].copy(),
        best_pose=best.copy(),
    )


def best_places(keyframes: np.ndarray, valid: np.ndarray, top_k: int) -> np.ndarray:
    """Positions (into best-first arrays) of the valid entries whose keyframe is one of the
    ``top_k`` best keyframes, best first."""
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        return rows
    kf = keyframes[rows]
    chosen = kf[first_of_each_place(kf, top_k)]
    return rows[np.isin(kf, chosen)]


def message_fields(estimate: PoseEstimate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fix as the fields of a geometry_msgs/PoseWithCovariance: position (3,), orientation
    quaternion (4,) x y z w, covariance (36,) row-major over x y z roll pitch yaw."""
    if not estimate.ok or estimate.pose is None or estimate.covariance is None:
        raise ValueError(f"no fix at stamp {estimate.stamp:.9f} ({estimate.reason}): no pose")
    T = estimate.pose
    quat = Rotation.from_matrix(T[:3, :3]).as_quat()
    return T[:3, 3].copy(), quat, np.ascontiguousarray(estimate.covariance).reshape(36)
