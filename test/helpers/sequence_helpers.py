"""A synthetic town for the sequence localizer's tests: a grid of one-way streets, random
embeddings that vary smoothly along each street, and noisy queries of the true place.

The town is a 4 x 4 grid of streets 60 m apart and 180 m long; east-west streets are mapped
driving east (+x), north-south ones driving north (+y), one entry every 3 m (488 entries,
64-d unit embeddings). Along a street an embedding is a moving average of white noise over
5 entries (neighbours look alike, as keyframes do), streets are independent. A query is the
embedding of the true place's nearest entry (same heading) plus isotropic Gaussian noise, so
strong that single-frame retrieval is usually wrong: only a sequence can localize.

The test drive is a staircase east, north, east, ... from (0, 0) to (180, 180): 360 m, one
frame per metre at 10 Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from liploc_ros.datasets.odometry import simulate_odometry
from liploc_ros.geometry import integrate_steps, relative_steps, se2_matrices
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info

DIM = 64
SPACING_M = 60.0
LINES = 4
ENTRY_STEP_M = 3.0
HEIGHT_M = 1.7
#: frame period (s) and step (m) of the test drive: 10 m/s
FRAME_DT = 0.1
#: query noise per dimension (the embeddings are unit vectors: 1/8 per dimension)
QUERY_NOISE = 0.45
_SMOOTH = 5


@dataclass(frozen=True)
class Town:
    database: MapDatabase
    #: (M, 3) x, y, yaw of the entries
    xyyaw: np.ndarray

    def nearest(self, xyyaw: np.ndarray) -> np.ndarray:
        """(N,) the entry nearest to each (x, y, yaw) among those of the same heading."""
        tree = cKDTree(self.xyyaw[:, :2])
        out = np.empty(len(xyyaw), np.int64)
        for i, (x, y, yaw) in enumerate(np.asarray(xyyaw, np.float64)):
            _, cand = tree.query([x, y], k=min(32, len(self.xyyaw)))
            dyaw = np.abs(np.angle(np.exp(1j * (self.xyyaw[cand, 2] - yaw))))
            out[i] = cand[np.flatnonzero(dyaw < math.pi / 4)[0]]
        return out

    def queries(
        self, route: np.ndarray, *, noise: float = QUERY_NOISE, seed: int = 1
    ) -> np.ndarray:
        """(N, D) float32 query embeddings of a drive (N, 3): the true place plus noise."""
        rng = np.random.default_rng(seed)
        emb = np.asarray(self.database.embeddings, np.float64)[self.nearest(route)]
        return (emb + noise * rng.standard_normal(emb.shape)).astype(np.float32)

    def off_map_queries(self, count: int, *, seed: int = 7) -> np.ndarray:
        """(count, D) embeddings unrelated to the map (as large as real queries)."""
        rng = np.random.default_rng(seed)
        scale = math.sqrt(1.0 / DIM + QUERY_NOISE**2)
        return (scale * rng.standard_normal((count, DIM))).astype(np.float32)

    def top1_error(self, queries: np.ndarray, route: np.ndarray) -> np.ndarray:
        """(N,) ground distance (m) from single-frame top-1 retrieval to the truth."""
        top = self.database.search(queries, 1).indices[:, 0]
        return np.hypot(*(self.xyyaw[top, :2] - route[:, :2]).T)


def make_town(seed: int = 0, headings_deg: tuple[float, ...] = (0.0,)) -> Town:
    """The town; with several ``headings_deg`` each keyframe holds one entry per heading
    (its yaw turned by it, its own embedding: looking back shows another street), keyframe
    by keyframe as build-map stores them."""
    rng = np.random.default_rng(seed)
    s = np.arange(0.0, SPACING_M * (LINES - 1) + 1e-9, ENTRY_STEP_M)
    places, embeddings = [], []
    for k in range(LINES):
        c = np.full_like(s, k * SPACING_M)
        places.append(np.column_stack([s, c, np.zeros_like(s)]))  # east along y = c
        places.append(np.column_stack([c, s, np.full_like(s, math.pi / 2)]))  # north
    for _ in places:
        views = []
        for _h in headings_deg:
            raw = rng.standard_normal((len(s) + _SMOOTH - 1, DIM))
            views.append(sum(raw[i : i + len(s)] for i in range(_SMOOTH)))
        embeddings.append(np.stack(views, axis=1).reshape(-1, DIM))
    keyframes = np.concatenate(places)
    turns = np.radians(np.asarray(headings_deg, np.float64))
    xyyaw = np.repeat(keyframes, len(turns), axis=0)
    xyyaw[:, 2] = np.angle(np.exp(1j * (xyyaw[:, 2] + np.tile(turns, len(keyframes)))))
    emb = np.concatenate(embeddings)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    database = MapDatabase.from_poses(
        emb.astype(np.float32),
        se2_matrices(xyyaw, HEIGHT_M),
        np.arange(len(emb)) * FRAME_DT,
        synthetic_info(DIM),
        heading_deg=np.tile(np.asarray(headings_deg, np.float32), len(keyframes)),
        keyframes=np.repeat(np.arange(len(keyframes)), len(turns)),
    )
    return Town(database, xyyaw)


def staircase(step: float = 1.0) -> np.ndarray:
    """(N, 3) the test drive: east and north in turn along the grid, one pose per ``step``."""
    out = []
    x = y = 0.0
    per_leg = round(SPACING_M / step)
    for leg in range(2 * (LINES - 1)):
        yaw = 0.0 if leg % 2 == 0 else math.pi / 2
        for _ in range(per_leg):
            out.append((x, y, yaw))
            x += step * math.cos(yaw)
            y += step * math.sin(yaw)
    out.append((x, y, out[-1][2]))
    return np.round(np.array(out), 9)


def kidnapped(route: np.ndarray, at: int, jump: int) -> np.ndarray:
    """The drive with frames ``at`` .. ``at + jump - 1`` cut out: at frame ``at`` the
    vehicle is suddenly ``jump`` metres further along."""
    return np.concatenate([route[:at], route[at + jump :]])


def odometry(route: np.ndarray, *, seed: int = 5, blind_at: int | None = None) -> np.ndarray:
    """(N, 4, 4) drifting odometry (the default error model) of a drive; ``blind_at``: the
    step into that frame reads 1 m straight ahead whatever the truth did (a kidnap)."""
    steps = relative_steps(route)
    if blind_at is not None:
        steps[blind_at - 1] = (1.0, 0.0, 0.0)
    felt = integrate_steps(route[0], steps)
    return simulate_odometry(se2_matrices(felt, HEIGHT_M), seed)


def truth_poses(route: np.ndarray) -> np.ndarray:
    return se2_matrices(route, HEIGHT_M)


def stamps(count: int) -> np.ndarray:
    return np.arange(count) * FRAME_DT
