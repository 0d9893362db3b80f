"""The street network: an uneven grid with missing segments, and what the ground is made of.

Streets run along x and y (a Manhattan-like grid whose block sizes vary), which keeps the
ground lookup an analytic, vectorised function of (x, y) instead of a large raster: every
ground point the camera or the LiDAR sees is classified on the fly as asphalt, lane paint,
kerb, sidewalk, grass or paving.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from liploc_ros.datasets.synthetic.config import TownConfig
from liploc_ros.datasets.synthetic.materials import Material
from liploc_ros.datasets.synthetic.seeding import SALT_ROADS, rng

#: dashed centre line: dash length and period in metres
DASH, DASH_PERIOD = 3.0, 6.0
#: half-width of painted lines
LINE_HALF_WIDTH = 0.08
#: lane lines stop this far beyond the road edge from a junction centre (crossing zone)
MARKING_CLEARANCE = 4.0


def _nearest_from_cell(grid: np.ndarray, v: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Index of the grid line nearest to ``v``, given ``cell = searchsorted(grid, v)``."""
    k = np.clip(cell, 1, len(grid) - 1)
    return np.where(v - grid[k - 1] < grid[k] - v, k - 1, k)


class RoadNetwork:
    """Streets x = xs[i] (north-south) and y = ys[j] (east-west) with segments that may be
    missing; two lanes, a parking lane each side, then kerb and sidewalk."""

    def __init__(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        ns: np.ndarray,
        ew: np.ndarray,
        crosswalk: np.ndarray,
        lot_grass: np.ndarray,
        lane_width: float,
        parking_width: float,
        sidewalk_width: float,
    ) -> None:
        #: (nx,) x of the north-south streets, ascending
        self.xs = np.asarray(xs, dtype=np.float64)
        #: (ny,) y of the east-west streets, ascending
        self.ys = np.asarray(ys, dtype=np.float64)
        #: (nx, ny - 1) street x = xs[i] exists between ys[j] and ys[j + 1]
        self.ns = np.asarray(ns, dtype=bool)
        #: (ny, nx - 1) street y = ys[j] exists between xs[i] and xs[i + 1]
        self.ew = np.asarray(ew, dtype=bool)
        #: (nx, ny) junctions with zebra crossings
        self.crosswalk = np.asarray(crosswalk, dtype=bool)
        #: (nx + 1, ny + 1) block cells whose open ground is grass (else paving)
        self.lot_grass = np.asarray(lot_grass, dtype=bool)
        self.lane_width = float(lane_width)
        self.parking_width = float(parking_width)
        self.sidewalk_width = float(sidewalk_width)
        self.degree = self._degree()
        self.node = self.degree > 0

    @property
    def half_road(self) -> float:
        """Centre line to kerb."""
        return self.lane_width + self.parking_width

    @property
    def half_walk(self) -> float:
        """Centre line to the outer edge of the sidewalk (where lots begin)."""
        return self.half_road + self.sidewalk_width

    def _degree(self) -> np.ndarray:
        deg = np.zeros((len(self.xs), len(self.ys)), dtype=np.int32)
        deg[:, :-1] += self.ns
        deg[:, 1:] += self.ns
        deg[:-1, :] += self.ew.T
        deg[1:, :] += self.ew.T
        return deg

    def neighbours(self, i: int, j: int) -> list[tuple[int, int]]:
        """Junctions joined to junction (i, j) by an existing street segment."""
        out = []
        if j + 1 < len(self.ys) and self.ns[i, j]:
            out.append((i, j + 1))
        if j > 0 and self.ns[i, j - 1]:
            out.append((i, j - 1))
        if i + 1 < len(self.xs) and self.ew[j, i]:
            out.append((i + 1, j))
        if i > 0 and self.ew[j, i - 1]:
            out.append((i - 1, j))
        return out

    def position(self, node: tuple[int, int]) -> np.ndarray:
        return np.array([self.xs[node[0]], self.ys[node[1]]])

    def is_connected(self) -> bool:
        nodes = list(zip(*np.nonzero(self.node), strict=True))
        if not nodes:
            return False
        seen = {nodes[0]}
        queue = deque([nodes[0]])
        while queue:
            for nb in self.neighbours(*queue.popleft()):
                if nb not in seen:
                    seen.add(nb)
                    queue.append(nb)
        return len(seen) == len(nodes)

    def ground_material(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Material code (uint8) of the ground at world points (x, y)."""
        xs, ys = self.xs, self.ys
        W, Ws = self.half_road, self.half_walk
        # cells between streets, the nearest street of each direction and the segment beside
        cell_x = np.searchsorted(xs, x)
        cell_y = np.searchsorted(ys, y)
        i = _nearest_from_cell(xs, x, cell_x)
        j = _nearest_from_cell(ys, y, cell_y)
        iseg = np.clip(cell_x - 1, 0, len(xs) - 2)
        jseg = np.clip(cell_y - 1, 0, len(ys) - 2)
        dx = x - xs[i]
        dy = y - ys[j]
        adx, ady = np.abs(dx), np.abs(dy)
        ns_on = self.ns[i, jseg] & (cell_y > 0) & (cell_y < len(ys))
        ew_on = self.ew[j, iseg] & (cell_x > 0) & (cell_x < len(xs))
        node_on = self.node[i, j]
        # distance to the nearest street's centre line (a junction counts as a square)
        off = np.where(ns_on, adx, np.inf)
        np.minimum(off, np.where(ew_on, ady, np.inf), out=off)
        np.minimum(off, np.where(node_on, np.maximum(adx, ady), np.inf), out=off)

        mat = np.where(self.lot_grass[cell_x, cell_y], Material.GRASS, Material.PAVING)
        mat = mat.astype(np.uint8)
        mat[off < Ws] = Material.SIDEWALK
        mat[off < W + 0.3] = Material.KERB
        road = np.flatnonzero(off < W)
        mat[road] = Material.ASPHALT
        paint = self._paint(
            x[road], y[road], dx[road], dy[road], ns_on[road], ew_on[road], jseg[road],
            iseg[road], self.crosswalk[i[road], j[road]],
        )  # fmt: skip
        mat[road[paint]] = Material.LANE_PAINT
        return mat

    def _paint(
        self, x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray, ns_on: np.ndarray,
        ew_on: np.ndarray, jseg: np.ndarray, iseg: np.ndarray, zebra: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """Lane lines and zebra crossings among road points."""
        W, lane = self.half_road, self.lane_width
        adx, ady = np.abs(dx), np.abs(dy)
        clear = W + MARKING_CLEARANCE
        ns_lines = ns_on & (ady > clear)
        ew_lines = ew_on & (adx > clear)
        paint = ns_lines & (np.abs(adx - lane) < LINE_HALF_WIDTH)
        paint |= ew_lines & (np.abs(ady - lane) < LINE_HALF_WIDTH)
        # the costly tests only where they can succeed
        k = np.flatnonzero(ns_lines & (adx < LINE_HALF_WIDTH))
        paint[k] = np.mod(y[k] - self.ys[jseg[k]], DASH_PERIOD) < DASH
        k = np.flatnonzero(ew_lines & (ady < LINE_HALF_WIDTH))
        paint[k] = np.mod(x[k] - self.xs[iseg[k]], DASH_PERIOD) < DASH
        k = np.flatnonzero(zebra & ns_on & (ady > W + 0.6) & (ady < W + 3.6) & (adx < lane))
        paint[k] = np.mod(dx[k], 1.0) < 0.5
        k = np.flatnonzero(zebra & ew_on & (adx > W + 0.6) & (adx < W + 3.6) & (ady < lane))
        paint[k] = np.mod(dy[k], 1.0) < 0.5
        return paint


def make_road_network(cfg: TownConfig) -> RoadNetwork:
    """Draw the street grid of town ``cfg.seed``."""
    gen = rng(cfg.seed, SALT_ROADS)
    lo, hi = cfg.block_size
    xs = np.concatenate([[0.0], np.cumsum(gen.uniform(lo, hi, cfg.blocks_x))])
    ys = np.concatenate([[0.0], np.cumsum(gen.uniform(lo, hi, cfg.blocks_y))])
    xs -= 0.5 * (xs[0] + xs[-1])
    ys -= 0.5 * (ys[0] + ys[-1])
    nx, ny = len(xs), len(ys)
    ns = np.ones((nx, ny - 1), dtype=bool)
    ew = np.ones((ny, nx - 1), dtype=bool)
    segments = [(0, i, j) for i in range(nx) for j in range(ny - 1)]
    segments += [(1, j, i) for j in range(ny) for i in range(nx - 1)]
    target = round(cfg.missing_streets * len(segments))
    removed = 0
    crosswalk = gen.random((nx, ny)) < 0.35
    lot_grass = gen.random((nx + 1, ny + 1)) < 0.3
    for k in gen.permutation(len(segments)):
        if removed >= target:
            break
        axis, a, b = segments[k]
        grid = ns if axis == 0 else ew
        grid[a, b] = False
        net = RoadNetwork(xs, ys, ns, ew, crosswalk, lot_grass, 1.0, 1.0, 1.0)
        ends = [(a, b), (a, b + 1)] if axis == 0 else [(b, a), (b + 1, a)]
        if min(net.degree[e] for e in ends) >= 2 and net.is_connected():
            removed += 1
        else:
            grid[a, b] = True
    return RoadNetwork(
        xs,
        ys,
        ns,
        ew,
        crosswalk,
        lot_grass,
        cfg.lane_width,
        cfg.parking_width,
        cfg.sidewalk_width,
    )
