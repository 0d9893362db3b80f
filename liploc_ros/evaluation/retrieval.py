"""Retrieval metrics: top-K by dot product, Recall@K within a distance, chance level.

Positions are 2-D: the two coordinates a success distance is measured in, chosen by
:func:`positions` from one of two conventions:

- ``ground``: x and y of ``T_map_lidar`` (every reader's ``Frame.pose``: map frame, z up),
  the distance in the ground plane;
- ``authors``: the 2nd and 3rd translation components of the dataset's own pose file, as
  the authors' evaluation computes it (KITTI camera poses: ty, tz, i.e. height and forward,
  the lateral x ignored; KITTI-360 poses.txt: y and z, the x ignored). Kept for comparison
  with published numbers only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.mapdb.places import first_of_each_place


def ground_positions(poses: np.ndarray) -> np.ndarray:
    """(N, 4, 4) T_map_lidar (z up) -> (N, 2) x, y."""
    return np.asarray(poses, dtype=np.float64)[:, :2, 3].copy()


def authors_positions(file_poses: np.ndarray) -> np.ndarray:
    """(N, 4, 4) pose-file poses -> (N, 2) their 2nd and 3rd translation components."""
    return np.asarray(file_poses, dtype=np.float64)[:, 1:3, 3].copy()


def positions(
    poses: np.ndarray | None, file_poses: np.ndarray | None, distance: str, name: str
) -> np.ndarray:
    """The (N, 2) positions of a drive under the ``distance`` convention (NaN: no pose)."""
    if distance == "ground":
        if poses is None:
            raise ConfigError(f"{name}: has no poses; Recall@K needs them")
        return ground_positions(poses)
    if distance == "authors":
        if file_poses is None:
            raise ConfigError(
                f"{name}: the authors' distance reads the (ty, tz) of KITTI / KITTI-360 pose "
                "files; this source has none (use the ground-plane distance)"
            )
        return authors_positions(file_poses)
    raise ConfigError(f"unknown distance {distance!r}; use 'ground' or 'authors'")


def top_k(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` database rows per query by inner product (FAISS flat index):
    (Q, k) indices and scores, best first."""
    # faiss logs every CPU-extension probe at INFO on import; that is noise here
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    k = min(int(k), len(database))
    if k < 1:
        raise ConfigError("top_k: the database is empty")
    db = np.ascontiguousarray(database, dtype=np.float32)
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    scores, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return indices.astype(np.int64), scores


def pairwise_distances(query_xy: np.ndarray, db_xy: np.ndarray) -> np.ndarray:
    """(Q, M) Euclidean distances between 2-D positions."""
    diff = np.asarray(query_xy, np.float64)[:, None, :] - np.asarray(db_xy, np.float64)[None]
    return np.sqrt((diff**2).sum(axis=-1))


@dataclass(frozen=True)
class Retrieval:
    """Per-query outcome of a retrieval evaluation."""

    #: (Q, K) retrieved database rows, best first
    indices: np.ndarray
    #: (Q, K) their dot products
    scores: np.ndarray
    #: (Q, K) distances from each query to each retrieved entry
    distances: np.ndarray
    threshold_m: float

    @property
    def top1_error(self) -> np.ndarray:
        return self.distances[:, 0]

    def success_at(self, k: int) -> np.ndarray:
        """(Q,) whether one of the first ``k`` entries is within the threshold."""
        return np.any(self.distances[:, :k] < self.threshold_m, axis=1)

    def recall_at(self, k: int) -> float:
        return float(self.success_at(k).mean()) if len(self.indices) else float("nan")


def retrieve(
    query_emb: np.ndarray,
    db_emb: np.ndarray,
    query_xy: np.ndarray,
    db_xy: np.ndarray,
    *,
    k: int,
    threshold_m: float,
    groups: np.ndarray | None = None,
) -> Retrieval:
    """Top-``k`` retrieval of every query and the distances of what it found.

    ``groups`` (one id per database row, e.g. the scan of each crop heading): the top ``k``
    distinct groups, each by its best row, so that a place's other crops do not crowd the
    others out of the top ``k``.
    """
    if groups is None:
        indices, scores = top_k(query_emb, db_emb, k)
    else:
        indices, scores = _top_k_groups(query_emb, db_emb, np.asarray(groups), k)
    q = np.asarray(query_xy, np.float64)
    d = np.asarray(db_xy, np.float64)[indices]
    distances = np.sqrt(((d - q[:, None, :]) ** 2).sum(axis=-1))
    return Retrieval(indices, scores, distances, float(threshold_m))


def _top_k_groups(
    queries: np.ndarray, database: np.ndarray, groups: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    if len(groups) != len(database):
        raise ConfigError(f"retrieve: {len(groups)} group ids for {len(database)} rows")
    per_group = int(np.unique(groups, return_counts=True)[1].max())
    k = min(int(k), len(np.unique(groups)))
    indices, scores = top_k(queries, database, k * per_group)
    out_i = np.empty((len(indices), k), np.int64)
    out_s = np.empty((len(indices), k), scores.dtype)
    for q, (row, sc) in enumerate(zip(indices, scores, strict=True)):
        keep = first_of_each_place(groups[row], k)
        out_i[q], out_s[q] = row[keep], sc[keep]
    return out_i, out_s


def chance_level(query_xy: np.ndarray, db_xy: np.ndarray, threshold_m: float) -> float:
    """The expected Recall@1 of picking a database entry at random: the fraction of the
    database within the threshold of a query, averaged over the queries."""
    return float(chance_curve(query_xy, db_xy, [threshold_m])[0])


def recall_curve(top1_error: np.ndarray, thresholds: np.ndarray | Sequence[float]) -> np.ndarray:
    """Recall@1 at each threshold (a query succeeds when its top-1 error is below it)."""
    err = np.asarray(top1_error, np.float64)
    return np.array([float((err < t).mean()) for t in thresholds])


def chance_curve(
    query_xy: np.ndarray,
    db_xy: np.ndarray,
    thresholds: np.ndarray | Sequence[float],
    chunk: int = 1024,
) -> np.ndarray:
    """Chance level at each threshold (queries in chunks: a KITTI sequence's full distance
    matrix would take a few hundred MB)."""
    q = np.asarray(query_xy, np.float64)
    if len(q) == 0 or len(db_xy) == 0:
        return np.full(len(thresholds), np.nan)
    t = np.asarray(thresholds, np.float64)
    order = np.argsort(t, kind="stable")
    counts = np.zeros(len(t) + 1, np.int64)
    for start in range(0, len(q), chunk):
        dist = pairwise_distances(q[start : start + chunk], db_xy).ravel()
        # a distance d counts for every threshold above it: bin by the first such threshold
        counts += np.bincount(np.searchsorted(t[order], dist, side="right"), minlength=len(t) + 1)
    below = np.cumsum(counts)[:-1] / (len(q) * len(db_xy))
    out = np.empty(len(t))
    out[order] = below
    return out
