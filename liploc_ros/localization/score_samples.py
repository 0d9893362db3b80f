"""The samples a calibration is measured from: a labelled drive's standardised scores at the
entries of its places (by distance band) and elsewhere, the log-likelihood-ratio table they
give, and how fast the true place's scores decorrelate along the drive.

Pure numpy and scipy; :mod:`~liploc_ros.localization.calibration` says what is measured and
why, and assembles the result.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.spatial import cKDTree

from liploc_ros.errors import MapError
from liploc_ros.geometry import wrap, yaw_of
from liploc_ros.localization.scores import standardized

#: the entries of a frame's place lie at most this far from it (m)
MATCH_RADIUS_M = 12.0
#: upper edges (m) of the distance bands of the match scores but the last (open) one
BAND_EDGES_M = (1.5, 3.0, 5.0, 8.0)
#: entries farther than this from a frame are "elsewhere" (m): beyond the 20 m at which a
#: fix counts as right, with a margin
NULL_RADIUS_M = 30.0
#: a camera frame faces an entry within this heading difference
_FACING_RAD = math.pi / 4
#: fewest scores a distance band's table is made from
MIN_SAMPLES = 20
#: null entries scored per frame at most (a random subset of bigger maps)
_NULL_ENTRIES = 4096
#: points of the stored log-likelihood-ratio table
_GRID = 48


def entry_yaw(quaternions: np.ndarray) -> np.ndarray:
    """(N,) headings (rad) of (N, 4) x y z w orientations: where each entry's crop faces."""
    from scipy.spatial.transform import Rotation

    return yaw_of(Rotation.from_quat(np.asarray(quaternions, np.float64)).as_matrix())


def band_samples(
    tree: cKDTree, yaw: np.ndarray, truth: np.ndarray, offset: float
) -> list[tuple[tuple[float, float], np.ndarray]]:
    """Per distance band, its range and the (frame, entry) pairs sampled for it: entries
    facing the frame's heading at distances in the band's range plus ``offset``, sorted by
    frame, then distance."""
    k = min(96, tree.n)
    dist, idx = tree.query(truth[:, :2, 3], k=k, distance_upper_bound=MATCH_RADIUS_M + offset)
    dist, idx = dist.reshape(len(truth), k), idx.reshape(len(truth), k)
    found = idx < tree.n
    facing = np.zeros_like(found)
    heading = np.repeat(yaw_of(truth[:, :3, :3]), k).reshape(len(truth), k)
    facing[found] = np.abs(wrap(yaw[idx[found]] - heading[found])) <= _FACING_RAD
    edges = (0.0, *BAND_EDGES_M, MATCH_RADIUS_M)
    out = []
    for lo, hi in itertools.pairwise(edges):
        keep = facing & (dist >= lo + offset) & (dist < hi + offset)
        if offset > 0:
            keep &= dist > 1e-3  # never the frame's own scan
        rows, cols = np.nonzero(keep)  # row-major: by frame, then by distance
        out.append(((lo, hi), np.column_stack([rows, idx[rows, cols]])))
    return out


def pair_scores(
    q: np.ndarray, emb: np.ndarray, pairs: np.ndarray, mean: np.ndarray, cov: np.ndarray
) -> np.ndarray:
    """Standardised scores of (frame, entry) ``pairs``."""
    if len(pairs) == 0:
        return np.zeros(0)
    frames, entries = pairs[:, 0], pairs[:, 1]
    raw = np.einsum("nd,nd->n", q[frames].astype(np.float64), emb[entries].astype(np.float64))
    return standardized(q[frames], raw[:, None], mean, cov)[:, 0]


def null_subset(entries: int) -> np.ndarray:
    if entries <= _NULL_ENTRIES:
        return np.arange(entries)
    return np.sort(np.random.default_rng(0).choice(entries, _NULL_ENTRIES, replace=False))


def null_scores(
    q: np.ndarray,
    truth: np.ndarray,
    xy: np.ndarray,
    emb: np.ndarray,
    rows: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Every null score (entries of ``rows`` beyond the null radius of each frame), and each
    frame's best one (-inf: none)."""
    out, best = [], np.full(len(q), -np.inf)
    for start in range(0, len(q), 256):
        sl = slice(start, start + 256)
        z = standardized(q[sl], q[sl].astype(np.float64) @ emb[rows].T.astype(np.float64),
                         mean, cov)  # fmt: skip
        d = np.hypot(truth[sl, None, 0, 3] - xy[None, rows, 0],
                     truth[sl, None, 1, 3] - xy[None, rows, 1])  # fmt: skip
        far = d > NULL_RADIUS_M
        out.append(z[far])
        best[sl] = np.where(far, z, -np.inf).max(axis=1)
    return np.concatenate(out), best


def ratio_table(
    z_bands: list[np.ndarray], z_null: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The z grid, each band's monotone log-likelihood-ratio table on it (B, G), and the
    null's mean ratio below each grid point (at the first band: a frame at an entry)."""
    rows = [log_odds_row(z, z_null) for z in z_bands]
    lo = min(centres[0] for centres, _, _ in rows)
    hi = max(top for _, _, top in rows)
    grid = np.linspace(lo, hi, _GRID)
    llr = np.stack(
        [np.maximum.accumulate(np.interp(np.minimum(grid, top), centres, odds))
         for centres, odds, top in rows]
    )  # fmt: skip
    # E[LR | z <= t] under the null, from the null sample itself
    ordered = np.sort(z_null)
    ratio = np.exp(np.interp(ordered, grid, llr[0]))
    cumulative = np.cumsum(ratio) / np.arange(1, len(ordered) + 1)
    at = np.searchsorted(ordered, grid, side="right")
    below = np.where(at > 0, cumulative[np.maximum(at - 1, 0)], float(ratio[0]))
    return grid, llr, below


def log_odds_row(z_match: np.ndarray, z_null: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """One band: bin centres, the monotone log density ratio at them, and the match's 95th
    percentile, beyond which the ratio stays as it is there."""
    if len(z_match) < MIN_SAMPLES:
        raise MapError(
            f"calibration: only {len(z_match)} scores in a distance band (need {MIN_SAMPLES})"
        )
    hi = float(np.percentile(z_match, 95.0))
    pooled = np.concatenate([z_match, z_null])
    # bins: the match's quantiles (each holds a fair share of the matches), open-ended below
    # and above; a half count on each side keeps every bin's ratio finite
    edges = np.unique(np.quantile(z_match, np.linspace(0.0, 1.0, 17)))
    edges = np.unique(np.concatenate([[pooled.min() - 1e-9], edges, [pooled.max() + 1e-9]]))
    m_counts = np.histogram(z_match, edges)[0].astype(np.float64) + 0.5
    n_counts = np.histogram(z_null, edges)[0].astype(np.float64) + 0.5
    p_match = m_counts / m_counts.sum()
    p_null = n_counts / n_counts.sum()
    centres = 0.5 * (edges[:-1] + edges[1:])
    # the open-ended bins sit at the median null score below / at the match's 95th pct
    low = z_null[z_null <= edges[1]]
    centres[0] = float(np.median(low)) if low.size else edges[1] - 1.0
    centres[-1] = max(edges[-2], hi)
    # P(match | z) with equal priors, made non-decreasing in z (pool adjacent violators)
    share = p_match / (p_match + p_null)
    share = isotonic_regression(share, weights=p_match + p_null, increasing=True).x
    share = np.clip(share, 1e-12, 1.0 - 1e-12)
    return centres, np.log(share / (1.0 - share)), hi


def lag_pairs(truth: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
    """The drive's median frame step (m) and its (K, 2) pairs of consecutive scores."""
    steps = np.hypot(*np.diff(truth[:, :2, 3], axis=0).T)
    step = float(np.median(steps)) if steps.size else 1.0
    pairs = np.column_stack([z[:-1], z[1:]]) if len(z) > 1 else np.zeros((0, 2))
    return (step if step > 1e-3 else 1.0), pairs


def correlation_length(pairs: np.ndarray, step: float) -> float:
    """The correlation length (m) of a score along a drive, ``rho(step) = exp(-step / L)``
    at the lag-one correlation of ``pairs`` (consecutive scores, ``step`` metres apart)."""
    if len(pairs) < 3 or float(np.std(pairs)) == 0.0:
        return step
    rho = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    rho = min(max(rho if math.isfinite(rho) else 0.0, 0.01), 0.99)
    return -step / math.log(rho)


def nearest_match_series(
    bands: list[np.ndarray], band_z: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The frames of a drive with an entry in the first distance band (their indices, in
    time order) and the z-score of the nearest such entry: the true place's score a frame
    gets, from the bands' (frame, entry) pairs (sorted by frame, then distance)."""
    pairs, z = bands[0], band_z[0]
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    frames, first = np.unique(pairs[:, 0], return_index=True)
    return frames, z[first]
