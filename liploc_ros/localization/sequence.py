"""Sequence localization: Monte Carlo localization fusing odometry with map retrieval.

A camera frame alone is a noisy place recogniser; a vehicle also knows how far and which
way it moved since the previous frame. :class:`SequenceLocalizer` is a particle filter over
the sensor's ground pose (x, y, yaw) in the map frame, in the manner of AMCL:

1. **Predict**: every particle moves by the odometry with noise that grows with the motion
   (:mod:`~liploc_ros.localization.motion`), or by a bounded random walk without odometry.
2. **Inject** (augmented MCL with sensor resetting): a share of particles is replaced by new
   ones drawn at the frame's top-k retrieved map entries; the share grows when the
   short-term mean likelihood falls below the long-term one (a kidnap, a wrong street),
   and is all of them at start and after :meth:`reset`. So the filter needs no prior.
3. **Weigh** each particle by how well the map entries near it explain the frame
   (:mod:`~liploc_ros.localization.measurement`).
4. **Estimate** from the dominant mode (:mod:`~liploc_ros.localization.particles`), never
   the mean of two streets; then resample (low variance).

A fix is published only while *tracking*: the mode holds at least ``min_mode_weight`` of
the weight, its spread is at most ``max_position_std_m``, and the recent *support* (how far
above the break-even z-score the mode's particles are explained, averaged over frames) is
at least ``min_support``. The last gate is what stops fixes off the map: odometry keeps a
cloud of particles tight anywhere, but only the map can say it is in the right place.
The states are ``initializing`` (never tracked yet), ``tracking`` and ``lost``.

z, roll and pitch of the published pose come from the map entry nearest to the mode. The
cost per frame is linear in the particle count and independent of the map's size: the
retrieval goes through the map's index and the particles' neighbours through a k-d tree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import INITIALIZING, LOST, UNCERTAIN, PoseEstimate
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.motion import Motion, apply_odometry, random_walk, wrap
from liploc_ros.localization.particles import (
    Mode,
    dominant_mode,
    effective_count,
    normalized,
    systematic_resample,
)
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase

#: log-likelihoods are clipped here before exponentiation (the mean likelihood's averages)
_MAX_LOG = 50.0


class TrackState(str, Enum):
    """Where the filter stands."""

    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"


@dataclass(frozen=True)
class FilterStatus:
    """The filter after its latest frame (diagnostics, markers)."""

    state: TrackState
    #: Kish's effective particle count of the latest weights
    effective_particles: float
    #: share of the weight in the dominant mode
    mode_weight: float
    #: averaged support (z-score units above break-even) of the mode
    support: float
    #: particles injected at the latest frame
    injected: int
    #: frames seen and frames tracked since the filter was made or reset
    frames: int
    tracked_frames: int

    @property
    def tracked_share(self) -> float:
        return self.tracked_frames / self.frames if self.frames else 0.0


class SequenceLocalizer:
    """A particle filter over (x, y, yaw) in one map; feed it frames in time order."""

    def __init__(
        self,
        database: MapDatabase,
        config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
        localizer_config: LocalizerConfig = DEFAULT_CONFIG,
    ) -> None:
        if not isinstance(config, SequenceConfig):
            raise ConfigError(f"config must be a SequenceConfig, not {type(config).__name__}")
        self.database = database
        self.config = config
        self.localizer_config = localizer_config
        self.field = MapField(database, config)
        self._gen = np.random.default_rng(config.seed)
        self.reset()

    # ------------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything: the next frame starts global localization from scratch."""
        self._particles: np.ndarray | None = None
        self._log_w: np.ndarray | None = None
        self._state = TrackState.INITIALIZING
        self._w_slow = 0.0
        self._w_fast = 0.0
        # no evidence yet reads as a frame that matches nothing (z = 0): a first fix then
        # needs a few frames of support, never one lucky frame
        self._support = -self.config.z_break_even
        self._last_stamp: float | None = None
        self._status = FilterStatus(TrackState.INITIALIZING, 0.0, 0.0, 0.0, 0, 0, 0)

    @property
    def state(self) -> TrackState:
        return self._state

    @property
    def status(self) -> FilterStatus:
        return self._status

    @property
    def particles(self) -> np.ndarray:
        """(N, 3) x, y, yaw after the latest frame (equal weights); empty before any frame."""
        return np.zeros((0, 3)) if self._particles is None else self._particles.copy()

    # ------------------------------------------------------------------------ one frame

    def step(
        self,
        query: np.ndarray,
        stamp: float,
        motion: Motion | None,
        *,
        retrieved: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> PoseEstimate:
        """One frame: its embedding (D,), stamp (s), the odometry motion since the previous
        frame (None: no odometry), and optionally its top-k (indices, scores) already
        retrieved from this map (else the filter searches the map's index)."""
        t0 = time.perf_counter()
        cfg = self.config
        q = np.asarray(query, np.float32).reshape(-1)
        if q.shape[0] != self.database.dim or not np.isfinite(q).all():
            raise MapError(
                f"query embedding has shape {np.shape(query)} or non-finite values; the map "
                f"holds {self.database.dim}-d embeddings"
            )
        if retrieved is None:
            found = self.database.search(q, cfg.inject_top_k)
            indices, scores = found.indices[0], found.scores[0]
        else:
            indices = np.asarray(retrieved[0], np.int64).reshape(-1)
            scores = np.asarray(retrieved[1], np.float32).reshape(-1)
        t1 = time.perf_counter()
        self._predict(stamp, motion)
        log_prior, injected = self._inject(q, indices)
        assert self._particles is not None
        measured = self.field.score(q, self._particles)
        log_lik = measured.log_likelihood
        prior = normalized(log_prior)
        weights = normalized(log_prior + log_lik)
        self._update_averages(log_lik, prior)
        mode = dominant_mode(self._particles, weights, cfg.mode_radius_m, cfg.mode_yaw_deg)
        self._support += cfg.support_rate * (self._mode_support(q, mode) - self._support)
        estimate = self._decide(mode, stamp, indices, scores)
        n_eff = effective_count(weights)
        self._resample_if_needed(weights, n_eff)
        frames = self._status.frames + 1
        tracked = self._status.tracked_frames + int(estimate.ok)
        self._status = FilterStatus(
            self._state, n_eff, mode.weight, self._support, injected, frames, tracked
        )
        t2 = time.perf_counter()
        timings = {"search": 1000.0 * (t1 - t0), "filter": 1000.0 * (t2 - t1)}
        timings["total"] = timings["search"] + timings["filter"]
        return _with_timings(estimate, timings)

    def _resample_if_needed(self, weights: np.ndarray, n_eff: float) -> None:
        """Resample to ``particles`` when the weights degenerate or the injected particles
        have grown the set by half; else carry the weights, so that a hypothesis injected
        with a small prior keeps gathering evidence over several frames instead of being
        dropped at once (the posterior then remembers its alternatives, as a grid would)."""
        assert self._particles is not None
        n = self.config.particles
        if n_eff < 0.5 * n or len(self._particles) > 1.5 * n:
            keep = systematic_resample(weights, n, self._gen)
            self._particles = self._particles[keep]
            self._log_w = None
        else:
            self._log_w = np.log(np.maximum(weights, 1e-300))

    def _mode_support(self, query: np.ndarray, mode: Mode) -> float:
        """How well the map explains the frame at the mode: the z-score, above break-even,
        of the entries nearest to the mode's pose (mean of the few within reach, headings
        alike). Deliberately not the particles' best-of-neighbours score, which a frame from
        anywhere earns somewhere."""
        cfg = self.config
        k = min(3 * self.field.per_keyframe, len(self.field))
        dist, idx = self.field.tree.query(mode.pose[:2], k=k)
        idx = np.atleast_1d(idx)[np.atleast_1d(dist) <= cfg.entry_radius_m]
        idx = idx[
            np.abs(wrap(self.field.yaw[idx] - mode.pose[2]))
            <= math.radians(cfg.heading_tolerance_deg)
        ]
        if idx.size == 0:
            return -cfg.z_break_even
        return float(np.mean(self.field.zscores(query, idx))) - cfg.z_break_even

    def _predict(self, stamp: float, motion: Motion | None) -> None:
        if self._particles is not None:
            if motion is not None:
                self._particles = apply_odometry(self._particles, motion, self.config, self._gen)
            else:
                dt = stamp - self._last_stamp if self._last_stamp is not None else 0.0
                self._particles = random_walk(self._particles, dt, self.config, self._gen)
        self._last_stamp = float(stamp)

    def _inject(self, query: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, int]:
        """Add particles drawn at the retrieved entries; returns every particle's log prior.

        The prediction's prior is a mixture: with probability 1 - eps the vehicle moved as
        the odometry says, with eps it is anywhere on the map (a kidnap), eps growing when
        the likelihood falls (augmented MCL). The injected particles sample that "anywhere"
        where the frame matches, so each carries the importance weight of the uniform prior
        over the map's M entries against the draw's probability: eps / M / p(entry) / n.
        Without it the top matches of every frame would be handed prior mass they have not
        earned, and a look-alike street would take over the posterior.
        """
        cfg = self.config
        sites = indices[indices >= 0]
        first = self._particles is None
        if sites.size == 0:
            if first:
                raise MapError("the first frame retrieved no map entry: nothing to start from")
            return self._carried_log_weights(), 0
        if first:
            eps, count = 1.0, cfg.particles
        else:
            ratio = self._w_fast / self._w_slow if self._w_slow > 0 else 1.0
            eps = min(max(cfg.kidnap_probability, 1.0 - ratio), cfg.inject_max_fraction)
            count = max(1, round(cfg.inject_fraction * cfg.particles))
            if eps <= 0.0:  # kidnap_probability 0 while tracking well: no mass to inject
                return self._carried_log_weights(), 0
        z = self.field.zscores(query, sites)
        p = np.exp(cfg.gain * (z - np.nanmax(z)))
        p = np.where(np.isfinite(p), p, 0.0)
        p = p / p.sum() if p.sum() > 0 else np.full(len(sites), 1.0 / len(sites))
        draw = self._gen.choice(len(sites), size=count, p=p)
        chosen = sites[draw]
        new = np.empty((count, 3))
        new[:, :2] = self.field.xy[chosen] + cfg.inject_position_std_m * self._gen.standard_normal(
            (count, 2)
        )
        new[:, 2] = wrap(
            self.field.yaw[chosen]
            + math.radians(cfg.inject_yaw_std_deg) * self._gen.standard_normal(count)
        )
        log_new = math.log(eps / len(self.field) / count) - np.log(p[draw])
        if first:
            self._particles = new
            return log_new, count
        assert self._particles is not None
        log_old = self._carried_log_weights() + math.log(1.0 - eps)
        self._particles = np.concatenate([self._particles, new])
        return np.concatenate([log_old, log_new]), count

    def _carried_log_weights(self) -> np.ndarray:
        """The current particles' normalised log weights (uniform right after resampling)."""
        assert self._particles is not None
        if self._log_w is None or len(self._log_w) != len(self._particles):
            return np.full(len(self._particles), -math.log(len(self._particles)))
        return self._log_w

    def _update_averages(self, log_lik: np.ndarray, prior: np.ndarray) -> None:
        """Thrun's w_slow / w_fast: the prior-weighted mean likelihood, long and short."""
        cfg = self.config
        mean_lik = float(prior @ np.exp(np.minimum(log_lik, _MAX_LOG)))
        if self._w_slow == 0.0:
            self._w_slow = self._w_fast = mean_lik
        else:
            self._w_slow += cfg.alpha_slow * (mean_lik - self._w_slow)
            self._w_fast += cfg.alpha_fast * (mean_lik - self._w_fast)

    def _decide(
        self, mode: Mode, stamp: float, indices: np.ndarray, scores: np.ndarray
    ) -> PoseEstimate:
        cfg = self.config
        confident = mode.weight >= cfg.min_mode_weight and mode.position_std <= (
            cfg.max_position_std_m
        )
        # hysteresis: a track is taken up on stronger support than it is kept with
        needed = cfg.min_support if self._state is TrackState.TRACKING else cfg.lock_support
        supported = self._support >= needed
        if confident and supported:
            self._state = TrackState.TRACKING
            reason = ""
        else:
            if self._state is TrackState.TRACKING:
                self._state = TrackState.LOST
            reason = INITIALIZING if self._state is TrackState.INITIALIZING else LOST
            if self._state is TrackState.LOST and supported and not confident:
                reason = UNCERTAIN
        pose = self._pose_of(mode.pose)
        ok = not reason
        finite = np.isfinite(scores)
        return PoseEstimate(
            stamp=float(stamp),
            ok=ok,
            reason=reason,
            pose=pose if ok else None,
            covariance=self._covariance(mode) if ok else None,
            confidence=float(mode.weight),
            score=float(scores[finite].max()) if finite.any() else float("nan"),
            indices=np.asarray(indices, np.int64),
            scores=np.asarray(scores, np.float32),
            spread_m=mode.position_std,
            best_pose=pose,
            state=self._state.value,
        )

    def _pose_of(self, xyyaw: np.ndarray) -> np.ndarray:
        """4 x 4 pose: x, y, yaw from the filter; z, roll, pitch from the nearest entry."""
        k = min(self.field.per_keyframe, len(self.field))
        _, near = self.field.tree.query(xyyaw[:2], k=k)
        near = np.atleast_1d(near)
        # the crop facing the filter's heading: its roll and pitch are the vehicle's
        nearest = int(near[np.argmin(np.abs(wrap(self.field.yaw[near] - xyyaw[2])))])
        entry = Rotation.from_quat(self.database.orientations[nearest])
        _, pitch, roll = entry.as_euler("ZYX")
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("ZYX", [xyyaw[2], pitch, roll]).as_matrix()
        T[:2, 3] = xyyaw[:2]
        T[2, 3] = self.database.positions[nearest, 2]
        return T

    def _covariance(self, mode: Mode) -> np.ndarray:
        """6 x 6 over x y z roll pitch yaw: the mode's spread plus floors."""
        cfg, floors = self.config, self.localizer_config.std_floors
        cov = np.zeros((6, 6))
        block = [0, 1, 5]
        cov[np.ix_(block, block)] = mode.covariance
        cov[0, 0] += cfg.min_position_std_m**2
        cov[1, 1] += cfg.min_position_std_m**2
        cov[5, 5] += math.radians(cfg.min_yaw_std_deg) ** 2
        for axis in (2, 3, 4):
            cov[axis, axis] += floors[axis] ** 2
        return cov


def _with_timings(estimate: PoseEstimate, timings: dict[str, float]) -> PoseEstimate:
    from dataclasses import replace

    return replace(estimate, timings_ms=timings)


def motions_from_odometry(odometry: np.ndarray | None, count: int) -> list[Motion | None]:
    """Per frame, the motion since the previous frame from (N, 4, 4) odometry poses
    (None for the first frame, for frames without finite odometry, or without odometry)."""
    if odometry is None:
        return [None] * count
    odom = np.asarray(odometry, np.float64)
    if len(odom) != count:
        raise ConfigError(f"{len(odom)} odometry poses for {count} frames")
    finite: np.ndarray = np.all(np.isfinite(odom).reshape(count, -1), axis=1)
    out: list[Motion | None] = [None]
    for i in range(1, count):
        out.append(Motion.between(odom[i - 1], odom[i]) if finite[i] and finite[i - 1] else None)
    return out


def run_sequence(
    localizer: SequenceLocalizer,
    queries: np.ndarray,
    stamps: np.ndarray | Sequence[float],
    motions: Sequence[Motion | None],
) -> list[PoseEstimate]:
    """Feed a whole stream of embedded frames to ``localizer``, in order."""
    if not len(queries) == len(stamps) == len(motions):
        raise ConfigError("run_sequence: queries, stamps and motions differ in length")
    return [
        localizer.step(q, float(t), m) for q, t, m in zip(queries, stamps, motions, strict=True)
    ]
