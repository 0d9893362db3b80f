"""The map as the sequence filter sees it: where its entries are, which way each looks, the
statistics that standardise a frame's scores, and which entry explains a particle.

A particle at (x, y, yaw) claims that the camera looks from there: the entry that shows
that view is the nearest one within ``entry_radius_m`` whose heading is within
``heading_tolerance_deg`` of the particle's (an entry holds the LiDAR crop facing its
heading). A particle with no such entry is *off the map*: no entry describes where it
claims to be, so the frame says nothing for or against it (likelihood ratio 1, as for the
filter's "elsewhere" hypothesis). The score of the frame at the explaining entry,
standardised over the whole map (:func:`~liploc_ros.localization.calibration.standardized`,
exact whole-map statistics at O(D^2) per frame, whatever the map's size), is what the
evidence model (:mod:`~liploc_ros.localization.evidence`) weighs, by the particle's
distance to the entry.

The cost per frame is a k-d tree query per particle (for its nearest keyframe's crops;
the ``neighbours`` nearest keyframes only for a particle facing none of them) and one dot
product per distinct explaining entry: independent of the map's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from liploc_ros.errors import MapError
from liploc_ros.geometry import wrap
from liploc_ros.localization.scores import embedding_stats
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.mapdb import MapDatabase


@dataclass(frozen=True)
class ParticleScores:
    """A frame's measurement of every particle."""

    #: (N,) the map entry explaining each particle (-1: none, off the map)
    entry: np.ndarray
    #: (N,) the frame's standardised score at that entry (NaN: none)
    z: np.ndarray
    #: (N,) the particle's ground distance to that entry (m; NaN: none)
    distance: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """(N,) bool: the particle is on the map (an entry explains it)."""
        return self.entry >= 0


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
        self._tolerance = math.radians(config.heading_tolerance_deg)

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

    def explaining(self, particles: np.ndarray) -> np.ndarray:
        """(N,) the entry explaining each (x, y, yaw) particle: the nearest within
        ``entry_radius_m`` facing within ``heading_tolerance_deg`` (-1: off the map), among
        the ``neighbours`` nearest keyframes."""
        p = np.asarray(particles, np.float64).reshape(-1, 3)
        # Most particles face a crop of their nearest keyframe: a query for that keyframe's
        # entries settles them (a third of the deep query's cost); only the rest, on the map
        # but facing none of its crops, need the full depth.
        entry, facing_none = self._first_facing(p, self.per_keyframe)
        deeper = min(self.config.neighbours * self.per_keyframe, len(self))
        if deeper > self.per_keyframe and facing_none.any():
            entry[facing_none] = self._first_facing(p[facing_none], deeper)[0]
        return entry

    def _first_facing(self, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first facing entry among the ``k`` nearest within the radius (-1: none), and
        the rows that have entries within the radius but none facing."""
        k = min(k, len(self))
        _, idx = self.tree.query(p[:, :2], k=k, distance_upper_bound=self.config.entry_radius_m)
        idx = idx.reshape(len(p), k)
        found = idx < len(self)
        facing = np.zeros_like(found)
        rows = np.nonzero(found)[0]
        facing[found] = np.abs(wrap(self.yaw[idx[found]] - p[rows, 2])) <= self._tolerance
        first = np.argmax(facing, axis=1)  # nearest first: the first facing one
        all_rows = np.arange(len(p))
        hit = facing[all_rows, first]
        return np.where(hit, idx[all_rows, first], -1), found[:, 0] & ~hit

    def score(self, query: np.ndarray, particles: np.ndarray) -> ParticleScores:
        """The measurement of (N, 3) particles by the frame whose embedding is ``query``."""
        p = np.asarray(particles, np.float64).reshape(-1, 3)
        entry = self.explaining(p)
        xy = self.xy[np.maximum(entry, 0)]
        distance = np.where(entry >= 0, np.hypot(*(xy - p[:, :2]).T), np.nan)
        return ParticleScores(entry, self.zscores(query, entry), distance)
