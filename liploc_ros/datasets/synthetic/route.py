"""The town's route: a walk through the street network, smoothed into a drivable path.

All traversals of a town follow one route so that a map from one of them covers the queries
of another. The walk is drawn step by step from a generator keyed by the town seed only, so
a longer route always begins with the shorter one (a drive's stretch does not depend on how
long the other drives are). Turns are rounded with circular arcs so that heading is smooth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.seeding import SALT_ROUTE, rng
from liploc_ros.errors import DatasetError

#: radius of the arcs that round the route's turns (centre line)
TURN_RADIUS = 10.0
#: spacing of the samples of the smoothed path
SAMPLE_STEP = 0.2
#: at most this many straight-through junctions in a row before a turn is forced
MAX_STRAIGHT = 1


@dataclass(frozen=True)
class Path:
    """A smooth planar path sampled by arc length: centre line of the route."""

    s: np.ndarray  # (M,) arc length, ascending, s[0] = 0
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray  # unwrapped, radians

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def sample(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, heading) at arc lengths ``s`` (clamped to the path)."""
        return (
            np.interp(s, self.s, self.x),
            np.interp(s, self.s, self.y),
            np.interp(s, self.s, self.heading),
        )


def walk_nodes(roads: RoadNetwork, seed: int, length: float) -> list[tuple[int, int]]:
    """Junctions visited by the route until it is at least ``length`` metres long."""
    gen = rng(seed, SALT_ROUTE)
    nodes = list(zip(*np.nonzero(roads.node), strict=True))
    centre = np.array([np.mean(roads.xs), np.mean(roads.ys)])
    dist = [np.hypot(*(roads.position(n) - centre)) for n in nodes]
    # start at one of the more central junctions, so the walk has room in every direction
    order = np.argsort(dist)
    start = nodes[order[gen.integers(min(4, len(nodes)))]]
    path = [start]
    used: set[frozenset] = set()
    straight = 0
    total = 0.0
    heading = None
    while total < length:
        here = path[-1]
        options = [n for n in roads.neighbours(*here) if len(path) < 2 or n != path[-2]]
        if not options:  # a dead end cannot happen (degree >= 2), but never loop forever
            raise DatasetError(f"route walk stuck at junction {here}")
        weights = []
        for n in options:
            d = roads.position(n) - roads.position(here)
            w = 1.0
            is_straight = heading is not None and np.dot(d, heading) > 0
            if is_straight:
                w = 0.05 if straight >= MAX_STRAIGHT else 0.6
            if frozenset((here, n)) not in used:
                w *= 5.0
            # towards junctions with more streets: more chances to turn later
            w *= roads.degree[n] - 1
            if n in path[-5:]:  # no tight loops around one block
                w *= 0.1
            weights.append(w)
        weights = np.asarray(weights) / np.sum(weights)
        nxt = options[gen.choice(len(options), p=weights)]
        d = roads.position(nxt) - roads.position(here)
        seg = float(np.hypot(*d))
        new_heading = d / seg
        straight = (
            straight + 1 if heading is not None and np.dot(new_heading, heading) > 0.5 else 0
        )
        heading = new_heading
        used.add(frozenset((here, nxt)))
        path.append(nxt)
        total += seg
    return path


def smooth_path(points: np.ndarray, radius: float = TURN_RADIUS) -> Path:
    """Round the corners of a polyline with arcs of ``radius`` and sample it densely."""
    pieces_x, pieces_y, pieces_h = [], [], []
    start = points[0]
    for k in range(1, len(points)):
        a, b = points[k - 1], points[k]
        d_in = (b - a) / np.linalg.norm(b - a)
        h_in = math.atan2(d_in[1], d_in[0])
        turn = 0.0
        if k + 1 < len(points):
            d_out = points[k + 1] - b
            d_out = d_out / np.linalg.norm(d_out)
            turn = math.atan2(d_in[0] * d_out[1] - d_in[1] * d_out[0], float(d_in @ d_out))
        trim = radius * math.tan(abs(turn) / 2) if abs(turn) > 1e-6 else 0.0
        end = b - d_in * trim
        seg = float(np.linalg.norm(end - start))
        n = max(math.ceil(seg / SAMPLE_STEP), 1)
        f = np.arange(n) / n
        pieces_x.append(start[0] + f * (end[0] - start[0]))
        pieces_y.append(start[1] + f * (end[1] - start[1]))
        pieces_h.append(np.full(n, h_in))
        if trim > 0:
            side = math.copysign(1.0, turn)
            normal = np.array([-d_in[1], d_in[0]]) * side
            centre = end + normal * radius
            n_arc = max(math.ceil(radius * abs(turn) / SAMPLE_STEP), 2)
            phi = turn * np.arange(n_arc) / n_arc
            rel = end - centre
            c, s = np.cos(phi), np.sin(phi)
            pieces_x.append(centre[0] + c * rel[0] - s * rel[1])
            pieces_y.append(centre[1] + s * rel[0] + c * rel[1])
            pieces_h.append(h_in + phi)
            start = b + (points[k + 1] - b) / np.linalg.norm(points[k + 1] - b) * trim
        else:
            start = end
    last = points[-1]
    x = np.concatenate([*pieces_x, [last[0]]])
    y = np.concatenate([*pieces_y, [last[1]]])
    heading = np.unwrap(np.concatenate([*pieces_h, [pieces_h[-1][-1]]]))
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    return Path(s=s, x=x, y=y, heading=heading)


def make_route(roads: RoadNetwork, seed: int, length: float) -> Path:
    """The route of town ``seed``, at least ``length`` metres long."""
    # Rounding turns shortens the path (by at most 8 % on the smallest blocks); the walk
    # overshoots by more, so that the asked stretch never reaches the walk's last junction,
    # whose rounding is the only part that depends on how long the walk was.
    nodes = walk_nodes(roads, seed, 1.2 * length + 150.0)
    points = np.array([roads.position(n) for n in nodes])
    path = smooth_path(points)
    if path.length < length + 2 * TURN_RADIUS:
        raise DatasetError(f"route of town {seed} is too short ({path.length:.0f} m)")
    return path
