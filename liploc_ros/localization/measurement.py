"""How well a particle's pose explains a camera frame: the measurement model of the filter.

**Scores as z-scores over the map.** A raw similarity means little alone: some frames score
high against everything (a bland street), others low. As in SeqSLAM's contrast enhancement,
each frame's similarity to entry e is standardised over the whole map,

    z_e = (q . e - q . mu) / sqrt(q^T Sigma q),

with mu and Sigma the mean and covariance of the map's embeddings. Both are computed once
per map, so the exact whole-map mean and spread of a frame's scores cost O(D^2) per frame
whatever the map's size, and only the entries near particles are ever scored.

**Likelihood.** A particle at (x, y, yaw) is explained by the map entries within
``entry_radius_m`` whose heading is within ``heading_tolerance_deg`` (an entry holds the
LiDAR crop facing its heading: a camera looking elsewhere sees something else). Its
log-likelihood, relative to "the frame was taken somewhere the map does not describe", is

    log L = max(0, max_e [gain * (z_e - z_break_even) - d_e^2 / (2 position_std^2)])

so a place that matches well (z above the break-even) gains weight, a place that does not
is no worse than off the map, and a frame that matches nothing (bad light, an unmapped
street) leaves the posterior as it was instead of destroying it: the robust (outlier
mixture) form of the likelihood.

**Calibration.** If the z-score of the true place is roughly N(mu1, s^2) and that of other
places N(0, s^2), the log likelihood ratio is linear in z with slope mu1 / s^2 and crosses 0
at z = mu1 / 2: the gain and the break-even. :func:`calibrate` measures mu1 and s on drives
of towns that the benchmarks do not score, and tempers the gain by the frames' correlation
(consecutive frames are not independent looks: a naive product of their likelihoods is
overconfident by about their effective sample size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from liploc_ros.errors import MapError
from liploc_ros.localization.motion import wrap
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.mapdb import MapDatabase

#: rows used for the embedding statistics (a deterministic subsample of bigger maps)
_STATS_ROWS = 65_536


@dataclass(frozen=True)
class ParticleScores:
    """A frame's measurement of every particle."""

    #: (N,) log-likelihood relative to off-map (>= 0)
    log_likelihood: np.ndarray
    #: (N,) the map entry explaining each particle (-1: none)
    entry: np.ndarray


class MapField:
    """The map's entries as the filter sees them: ground positions, headings, statistics."""

    def __init__(self, database: MapDatabase, config: SequenceConfig) -> None:
        if len(database) == 0:
            raise MapError("the sequence localizer needs a map with at least one entry")
        self.database = database
        self.config = config
        self.xy = np.ascontiguousarray(database.positions[:, :2], np.float64)
        rot = Rotation.from_quat(np.asarray(database.orientations, np.float64))
        forward = rot.apply(np.array([1.0, 0.0, 0.0]))
        self.yaw = np.arctan2(forward[:, 1], forward[:, 0])
        self.tree = cKDTree(self.xy)
        #: most entries one keyframe holds (one per crop heading): they share a position, so
        #: every "k nearest entries" query asks for k keyframes' worth of them
        self.per_keyframe = max(1, database.entries_per_keyframe)
        self.mean, self.cov = embedding_stats(np.asarray(database.embeddings))

    def __len__(self) -> int:
        return len(self.xy)

    def frame_stats(self, query: np.ndarray) -> tuple[float, float]:
        """The mean and standard deviation of ``query``'s scores over the whole map."""
        q = np.asarray(query, np.float64).reshape(-1)
        mean = float(q @ self.mean)
        std = math.sqrt(max(float(q @ self.cov @ q), 1e-24))
        return mean, std

    def zscores(self, query: np.ndarray, entries: np.ndarray) -> np.ndarray:
        """z-scores of ``entries`` (any int array, -1 allowed: NaN) for ``query``."""
        idx = np.asarray(entries, np.int64)
        out = np.full(idx.shape, np.nan)
        valid = idx >= 0
        if valid.any():
            unique, inverse = np.unique(idx[valid], return_inverse=True)
            emb = np.asarray(self.database.embeddings[unique], np.float64)
            q = np.asarray(query, np.float64).reshape(-1)
            mean, std = self.frame_stats(q)
            out[valid] = ((emb @ q - mean) / std)[inverse]
        return out

    def score(self, query: np.ndarray, particles: np.ndarray) -> ParticleScores:
        """The measurement of (N, 3) particles by the frame whose embedding is ``query``."""
        cfg = self.config
        p = np.asarray(particles, np.float64)
        k = min(cfg.neighbours * self.per_keyframe, len(self))
        dist, idx = self.tree.query(p[:, :2], k=k, distance_upper_bound=cfg.entry_radius_m)
        dist, idx = dist.reshape(len(p), k), idx.reshape(len(p), k)
        found = idx < len(self)
        idx = np.where(found, idx, -1)
        heading_ok = np.zeros_like(found)
        heading_ok[found] = np.abs(wrap(self.yaw[idx[found]] - p[np.nonzero(found)[0], 2])) <= (
            math.radians(cfg.heading_tolerance_deg)
        )
        idx = np.where(heading_ok, idx, -1)
        z = self.zscores(query, idx)
        term = cfg.gain * (z - cfg.z_break_even) - dist**2 / (2.0 * cfg.position_std_m**2)
        term = np.where(idx >= 0, term, -np.inf)
        best = np.argmax(term, axis=1)
        rows = np.arange(len(p))
        best_term = term[rows, best]
        entry = np.where(np.isfinite(best_term), idx[rows, best], -1)
        return ParticleScores(np.maximum(best_term, 0.0), entry)


def embedding_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of the rows (a fixed subsample of large maps)."""
    n = len(embeddings)
    if n > _STATS_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(n, _STATS_ROWS, replace=False))
        sample = np.asarray(embeddings[rows], np.float64)
    else:
        sample = np.asarray(embeddings, np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    cov = centred.T @ centred / max(len(sample) - 1, 1)
    # a map of one entry (or identical ones) has no spread: keep the z-scores finite
    cov[np.diag_indices_from(cov)] += 1e-9 * max(float(np.trace(cov)) / len(mean), 1e-12)
    return mean, cov


@dataclass(frozen=True)
class Calibration:
    """The measured z-score statistics and the gain and break-even they imply."""

    #: mean and std of the z-score of the true place (nearest entry within 2 m, same heading)
    match_mean: float
    match_std: float
    #: lag-1 autocorrelation of the true place's z-score along the drive
    correlation: float
    #: frames measured
    frames: int

    @property
    def gain(self) -> float:
        """Slope of the log likelihood ratio, tempered by the frames' effective sample size."""
        raw = self.match_mean / max(self.match_std**2, 1e-12)
        rho = min(max(self.correlation, 0.0), 0.99)
        return raw * (1.0 - rho) / (1.0 + rho)

    @property
    def z_break_even(self) -> float:
        return self.match_mean / 2.0


def calibrate(
    field: MapField, queries: np.ndarray, truth: np.ndarray, *, radius_m: float = 2.0
) -> Calibration:
    """Measure the true place's z-scores of ``queries`` (Q, D) whose ground truth ``truth``
    (Q, 4, 4) is known, against map ``field``."""
    q = np.asarray(queries, np.float64)
    t = np.asarray(truth, np.float64)
    dist, idx = _nearest_same_heading(field, t)
    keep = dist <= radius_m
    if keep.sum() < 3:
        raise MapError("calibration needs at least 3 query frames within reach of the map")
    z = np.array([field.zscores(q[i], np.array([idx[i]]))[0] for i in np.flatnonzero(keep)])
    zs = z[1:], z[:-1]
    corr = float(np.corrcoef(*zs)[0, 1]) if len(z) > 3 else 0.0
    return Calibration(float(z.mean()), float(z.std()), corr, len(z))


def _nearest_same_heading(field: MapField, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pose, the nearest entry among those facing closest to its heading (a keyframe's
    crops share one position: the true place is the crop the camera looks along)."""
    k = min(field.per_keyframe, len(field))
    dist, idx = field.tree.query(poses[:, :2, 3], k=k)
    dist, idx = dist.reshape(len(poses), k), idx.reshape(len(poses), k)
    yaw = np.arctan2(poses[:, 1, 0], poses[:, 0, 0])
    turn = np.abs(wrap(field.yaw[idx] - yaw[:, None]))
    # nearest first, then best heading among entries at (nearly) that distance
    cost = np.round(dist, 3) * 1e3 + turn
    pick = np.argmin(cost, axis=1)
    rows = np.arange(len(poses))
    return dist[rows, pick], idx[rows, pick]
