"""Column ray casting against the 2.5D world, shared by the camera and the LiDAR.

A level sensor's rays come in vertical fans: every ray of one image column (camera) or one
azimuth step (LiDAR) lies in one vertical plane and differs only by its slope (rise per
metre of horizontal travel). So each column is cast once as a 2D ray against the object
footprints, giving entry/exit distances; in the (distance, height) plane of the column an
object is then a rectangle, and the rays it stops are exactly those whose slope lies between
its corner slopes. Every elevation of the column is resolved at once by taking, per row, the
nearest object whose slope interval holds the row's slope; the rest fall to the ground (if
going down) or the sky. Camera and LiDAR call the same function on the same objects, so the
two see the same geometry by construction.

Only (column, object) pairs whose angular extents overlap are intersected, and objects that
hide the whole column cut its list short, which keeps the work near the visible surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.primitives import BOX, CYLINDER, Primitives
from liploc_ros.geometry import wrap

NOTHING, WALL, ROOF, UNDERSIDE, GROUND = 0, 1, 2, 3, 4
#: entry distance of a ray that starts inside a footprint (under a tree's crown)
_INSIDE = 1e-3


class RayFan:
    """A sensor's rays: columns by azimuth (relative to the sensor's heading, left positive,
    ascending), rows by slope (``slopes``: (columns, rows), or (1, rows) for all columns)."""

    def __init__(self, azimuth: np.ndarray, slopes: np.ndarray, wrap: bool) -> None:
        self.azimuth = np.ascontiguousarray(azimuth, dtype=np.float64)
        self.slopes = np.ascontiguousarray(np.atleast_2d(slopes), dtype=np.float64)
        self.wrap = wrap
        if np.any(np.diff(self.azimuth) <= 0):
            raise ValueError("ray fan azimuths must be strictly ascending")
        self.n_cols = len(self.azimuth)
        self.n_rows = self.slopes.shape[1]
        full = np.broadcast_to(self.slopes, (self.n_cols, self.n_rows))
        self.slope_min = full.min(axis=1)
        self.slope_max = full.max(axis=1)
        two_pi = 2 * np.pi
        self._search = (
            np.concatenate([self.azimuth - two_pi, self.azimuth, self.azimuth + two_pi])
            if wrap
            else self.azimuth
        )

    def column_ranges(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(object index, column) of every column whose azimuth lies in [lo, hi]."""
        a = np.searchsorted(self._search, lo, "left")
        b = np.searchsorted(self._search, hi, "right")
        counts = np.maximum(b - a, 0)
        owner = np.repeat(np.arange(len(lo)), counts)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        col = a[owner] + offset
        if self.wrap:
            col %= self.n_cols
        return owner, col


@dataclass
class Hits:
    """The rays of a fan that hit something, as flat per-hit arrays.

    Rays are numbered ``column * rows + row``; rays not listed hit nothing (sky).
    """

    shape: tuple[int, int]  # (columns, rows) of the fan
    index: np.ndarray  # (n,) ray number of each hit
    kind: np.ndarray  # (n,) uint8 WALL, ROOF, UNDERSIDE or GROUND
    dist: np.ndarray  # (n,) horizontal distance from the sensor
    slope: np.ndarray  # (n,) slope of the ray
    prim: np.ndarray  # (n,) int32 object index (-1 for the ground)
    nx: np.ndarray  # (n,) horizontal normal of wall hits (0 elsewhere)
    ny: np.ndarray
    x: np.ndarray  # (n,) world hit point
    y: np.ndarray
    z: np.ndarray
    cos_t: np.ndarray  # (columns,) world direction of each column
    sin_t: np.ndarray

    @property
    def col(self) -> np.ndarray:
        return self.index // self.shape[1]

    @property
    def row(self) -> np.ndarray:
        return self.index % self.shape[1]


@dataclass
class _Pairs:
    prim: np.ndarray
    col: np.ndarray
    t_in: np.ndarray
    t_out: np.ndarray
    z0: np.ndarray
    z1: np.ndarray
    nx: np.ndarray
    ny: np.ndarray

    def take(self, index: np.ndarray) -> _Pairs:
        return _Pairs(**{k: v[index] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[_Pairs]) -> _Pairs:
        return _Pairs(
            **{k: np.concatenate([p.__dict__[k] for p in parts]) for k in parts[0].__dict__}
        )


def _box_pairs(
    prims: Primitives, sel: np.ndarray, fan: RayFan, ox: float, oy: float, yaw: float,
    cos_t: np.ndarray, sin_t: np.ndarray,
) -> _Pairs:  # fmt: skip
    cx, cy, hx, hy = prims.cx[sel], prims.cy[sel], prims.hx[sel], prims.hy[sel]
    c, s = prims.cos[sel], prims.sin[sel]
    dx, dy = cx - ox, cy - oy
    # the sensor in each box's own frame
    px = -(dx * c + dy * s)
    py = -(-dx * s + dy * c)
    outside = (np.abs(px) > hx) | (np.abs(py) > hy)
    alpha = np.arctan2(dy, dx)
    corners = []
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        qx = dx + sx * hx * c - sy * hy * s
        qy = dy + sx * hx * s + sy * hy * c
        corners.append(wrap(np.arctan2(qy, qx) - alpha))
    rel = np.stack(corners)
    base = wrap(alpha - yaw)
    # a footprint around the sensor spans every column (it can only be seen from below)
    lo = np.where(outside, base + rel.min(axis=0), -np.pi)
    hi = np.where(outside, base + rel.max(axis=0), np.pi)
    owner, col = fan.column_ranges(lo, hi)
    ct, st = cos_t[col], sin_t[col]
    c, s = c[owner], s[owner]
    hx, hy, px, py = hx[owner], hy[owner], px[owner], py[owner]
    dlx = ct * c + st * s
    dly = -ct * s + st * c
    with np.errstate(divide="ignore", invalid="ignore"):
        ix, iy = 1.0 / dlx, 1.0 / dly
        t1, t2 = (-hx - px) * ix, (hx - px) * ix
        t3, t4 = (-hy - py) * iy, (hy - py) * iy
    tnx, tfx = np.minimum(t1, t2), np.maximum(t1, t2)
    tny, tfy = np.minimum(t3, t4), np.maximum(t3, t4)
    t_in, t_out = np.maximum(tnx, tny), np.minimum(tfx, tfy)
    x_face = tnx >= tny
    nlx = np.where(x_face, -np.sign(dlx), 0.0)
    nly = np.where(x_face, 0.0, -np.sign(dly))
    idx = sel[owner]
    ok = (t_in <= t_out) & (t_out > _INSIDE)
    t_in = np.maximum(t_in, _INSIDE)
    return _Pairs(
        prim=idx, col=col, t_in=t_in, t_out=t_out, z0=prims.z0[idx], z1=prims.z1[idx],
        nx=nlx * c - nly * s, ny=nlx * s + nly * c,
    ).take(np.flatnonzero(ok))  # fmt: skip


def _cylinder_pairs(
    prims: Primitives, sel: np.ndarray, fan: RayFan, ox: float, oy: float, yaw: float,
    cos_t: np.ndarray, sin_t: np.ndarray,
) -> _Pairs:  # fmt: skip
    dx, dy, r = prims.cx[sel] - ox, prims.cy[sel] - oy, prims.hx[sel]
    dist = np.hypot(dx, dy)
    outside = dist > r
    half = np.arcsin(np.clip(r / np.maximum(dist, 1e-9), 0.0, 1.0))
    base = wrap(np.arctan2(dy, dx) - yaw)
    lo = np.where(outside, base - half, -np.pi)
    hi = np.where(outside, base + half, np.pi)
    owner, col = fan.column_ranges(lo, hi)
    ct, st = cos_t[col], sin_t[col]
    qx, qy, r = -dx[owner], -dy[owner], r[owner]
    b = qx * ct + qy * st
    disc = b * b - (qx * qx + qy * qy - r * r)
    root = np.sqrt(np.maximum(disc, 0.0))
    t_in, t_out = -b - root, -b + root
    idx = sel[owner]
    z0, z1 = prims.z0[idx], prims.z1[idx]
    # a crown's height span shrinks towards its rim: a round silhouette from any side
    shrink = np.where(prims.rounded[idx], root / r, 1.0)
    mid, half_h = 0.5 * (z0 + z1), 0.5 * (z1 - z0) * shrink
    ok = (disc > 0) & (t_out > _INSIDE)
    t_in = np.maximum(t_in, _INSIDE)
    return _Pairs(
        prim=idx, col=col, t_in=t_in, t_out=t_out, z0=mid - half_h, z1=mid + half_h,
        nx=(qx + t_in * ct) / r, ny=(qy + t_in * st) / r,
    ).take(np.flatnonzero(ok))  # fmt: skip


def cast(
    prims: Primitives,
    fan: RayFan,
    origin: tuple[float, float],
    height: float,
    yaw: float,
    max_dist: float,
    max_layers: int = 64,
) -> Hits:
    """Cast every ray of ``fan`` from ``origin`` (height above the ground, heading yaw).

    At most ``max_layers`` (< 255) objects are considered per column, nearest first.
    """
    ox, oy = float(origin[0]), float(origin[1])
    theta = yaw + fan.azimuth
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    near = np.hypot(prims.cx - ox, prims.cy - oy) - prims.bound_radius < max_dist
    boxes = np.flatnonzero(near & (prims.shape == BOX))
    cylinders = np.flatnonzero(near & (prims.shape == CYLINDER))
    pairs = _Pairs.concat(
        [
            _box_pairs(prims, boxes, fan, ox, oy, yaw, cos_t, sin_t),
            _cylinder_pairs(prims, cylinders, fan, ox, oy, yaw, cos_t, sin_t),
        ]
    )
    pairs = pairs.take(np.flatnonzero(pairs.t_in < max_dist))
    pairs, s_lo, s_hi, rank = _visible_layers(pairs, fan, height, min(max_layers, 254))
    pair_of = _first_stops(pairs, s_lo, s_hi, rank, fan)
    return _hits(pairs, pair_of, fan, ox, oy, height, max_dist, cos_t, sin_t)


def _visible_layers(
    pairs: _Pairs, fan: RayFan, height: float, max_layers: int
) -> tuple[_Pairs, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs sorted by column then distance, cut after an object hiding the whole column;
    with the slope interval each pair stops and its rank (layer) in its column."""
    # slopes of the rays each pair stops: its (distance, height) rectangle seen from the sensor
    dz0, dz1 = pairs.z0 - height, pairs.z1 - height
    s_lo = np.minimum(dz0 / pairs.t_in, dz0 / pairs.t_out)
    s_hi = np.maximum(dz1 / pairs.t_in, dz1 / pairs.t_out)
    full = (s_lo <= fan.slope_min[pairs.col]) & (s_hi >= fan.slope_max[pairs.col])
    order = np.lexsort((pairs.t_in, pairs.col))
    n = len(order)
    if n == 0:
        return pairs, s_lo, s_hi, np.zeros(0, dtype=np.int64)
    pairs, s_lo, s_hi, full = pairs.take(order), s_lo[order], s_hi[order], full[order]
    starts = np.flatnonzero(np.r_[True, pairs.col[1:] != pairs.col[:-1]])
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    rank = np.arange(n) - starts[seg]
    first_full = np.minimum.reduceat(np.where(full, rank, n), starts)
    keep = np.flatnonzero((rank <= first_full[seg]) & (rank < max_layers))
    return pairs.take(keep), s_lo[keep], s_hi[keep], rank[keep]


def _first_stops(
    pairs: _Pairs, s_lo: np.ndarray, s_hi: np.ndarray, rank: np.ndarray, fan: RayFan
) -> np.ndarray:
    """(columns, rows) index of the nearest pair stopping each ray, -1 where none does."""
    pair_of = np.full((fan.n_cols, fan.n_rows), -1, dtype=np.int64)
    if len(rank) == 0:
        return pair_of
    starts = np.flatnonzero(np.r_[True, pairs.col[1:] != pairs.col[:-1]])
    # rows x pairs: which rows each pair stops, coded 255 - rank so that the nearest
    # stopping pair of a column is the maximum over the column's pairs
    slopes = (fan.slopes[pairs.col] if fan.slopes.shape[0] > 1 else fan.slopes).T
    stops = (slopes >= s_lo) & (slopes <= s_hi)
    code = stops.view(np.uint8) * (255 - rank).astype(np.uint8)
    best = np.maximum.reduceat(code, starts, axis=1).T
    first = 255 - best.astype(np.int64)
    pair_of[pairs.col[starts]] = np.where(best > 0, starts[:, None] + first, -1)
    return pair_of


def _hits(
    pairs: _Pairs, pair_of: np.ndarray, fan: RayFan, ox: float, oy: float, height: float,
    max_dist: float, cos_t: np.ndarray, sin_t: np.ndarray,
) -> Hits:  # fmt: skip
    """Where each ray stops: on the object found for it (wall, roof or underside), else on
    the ground if it goes down, else nowhere."""
    C, R = pair_of.shape
    flat = pair_of.ravel()
    obj = np.flatnonzero(flat >= 0)
    p = flat[obj]
    sv = _slopes_of(fan, obj)
    t_in, t_out, z0, z1 = pairs.t_in[p], pairs.t_out[p], pairs.z0[p], pairs.z1[p]
    z_in = height + sv * t_in
    wall = (z_in >= z0 - 1e-9) & (z_in <= z1 + 1e-9)
    roof = ~wall & (z_in > z1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_cap = np.where(roof, z1 - height, z0 - height) / sv
    d_obj = np.clip(np.where(wall, t_in, d_cap), t_in, t_out)
    kind_obj = np.where(wall, WALL, np.where(roof, ROOF, UNDERSIDE)).astype(np.uint8)

    down = fan.slopes < 0
    down = np.broadcast_to(down, (C, R)).ravel() if down.shape[0] == 1 else down.ravel()
    ground = np.flatnonzero(down & (flat < 0))
    sg = _slopes_of(fan, ground)
    d_ground = -height / sg
    near = d_ground < max_dist
    ground, sg, d_ground = ground[near], sg[near], d_ground[near]

    n_ground = len(ground)
    zeros = np.zeros(n_ground)
    index = np.concatenate([obj, ground])
    dist = np.concatenate([d_obj, d_ground])
    col = index // R
    return Hits(
        shape=(C, R),
        index=index,
        kind=np.concatenate([kind_obj, np.full(n_ground, GROUND, dtype=np.uint8)]),
        dist=dist,
        slope=np.concatenate([sv, sg]),
        prim=np.concatenate([pairs.prim[p], np.full(n_ground, -1)]).astype(np.int32),
        nx=np.concatenate([np.where(wall, pairs.nx[p], 0.0), zeros]),
        ny=np.concatenate([np.where(wall, pairs.ny[p], 0.0), zeros]),
        x=ox + dist * cos_t[col],
        y=oy + dist * sin_t[col],
        z=np.concatenate([height + sv * d_obj, zeros]),
        cos_t=cos_t,
        sin_t=sin_t,
    )


def _slopes_of(fan: RayFan, index: np.ndarray) -> np.ndarray:
    """Slopes of the rays numbered ``index``."""
    if fan.slopes.shape[0] == 1:
        return fan.slopes[0, index % fan.n_rows]
    return fan.slopes.ravel()[index]
