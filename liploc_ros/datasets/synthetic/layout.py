"""Furnishing the streets with what stays put: buildings, walls, parks, trees, lamps, signs.

Places must be told apart at the 20 m scale by a camera and by a LiDAR alike, so variety is
drawn at two levels: per street side (a "character": mean height, setback, tree-lined or
not) and per object (footprint, height, gap, colour, window pattern, irregular spacing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import TownConfig
from liploc_ros.datasets.synthetic.materials import FACADE_PALETTE, Material
from liploc_ros.datasets.synthetic.primitives import PrimitiveBuilder, Primitives
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.seeding import SALT_LAYOUT, rng

_SIGN_COLOURS = np.array(
    [(0.1, 0.25, 0.7), (0.75, 0.1, 0.1), (0.92, 0.92, 0.92), (0.9, 0.75, 0.1)], dtype=np.float32
)


@dataclass(frozen=True)
class Frontage:
    """One side of one street segment, in street coordinates: along ``t`` from ``origin``
    (a junction centre) over ``length``; away from the street along ``n``."""

    origin: np.ndarray
    t: np.ndarray
    n: np.ndarray
    length: float
    #: distance from the centre line to the next parallel street (inf at the town's edge)
    room: float

    def point(self, along: float | np.ndarray, lateral: float | np.ndarray) -> np.ndarray:
        along = np.asarray(along, dtype=np.float64)[..., None]
        lateral = np.asarray(lateral, dtype=np.float64)[..., None]
        return self.origin + along * self.t + lateral * self.n

    @property
    def yaw(self) -> float:
        return math.atan2(self.t[1], self.t[0])


def frontages(roads: RoadNetwork) -> list[Frontage]:
    """Both sides of every existing street segment."""
    xs, ys = roads.xs, roads.ys
    out = []
    for i in range(len(xs)):
        for j in range(len(ys) - 1):
            if not roads.ns[i, j]:
                continue
            origin = np.array([xs[i], ys[j]])
            t = np.array([0.0, 1.0])
            east = xs[i + 1] - xs[i] if i + 1 < len(xs) else math.inf
            west = xs[i] - xs[i - 1] if i > 0 else math.inf
            length = ys[j + 1] - ys[j]
            out.append(Frontage(origin, t, np.array([1.0, 0.0]), length, east))
            out.append(Frontage(origin, t, np.array([-1.0, 0.0]), length, west))
    for j in range(len(ys)):
        for i in range(len(xs) - 1):
            if not roads.ew[j, i]:
                continue
            origin = np.array([xs[i], ys[j]])
            t = np.array([1.0, 0.0])
            north = ys[j + 1] - ys[j] if j + 1 < len(ys) else math.inf
            south = ys[j] - ys[j - 1] if j > 0 else math.inf
            length = xs[i + 1] - xs[i]
            out.append(Frontage(origin, t, np.array([0.0, 1.0]), length, north))
            out.append(Frontage(origin, t, np.array([0.0, -1.0]), length, south))
    return out


class _Footprints:
    """Axis-aligned bounds of the buildings placed so far, to keep them from overlapping."""

    def __init__(self) -> None:
        self.bounds = np.empty((0, 4))

    #: bounds overlapping by less than this are fine (attached buildings with a little yaw)
    TOLERANCE = 0.6

    def free(self, box: np.ndarray) -> bool:
        b = self.bounds
        box = box + np.array([self.TOLERANCE, -self.TOLERANCE, self.TOLERANCE, -self.TOLERANCE])
        hit = (b[:, 0] < box[1]) & (box[0] < b[:, 1]) & (b[:, 2] < box[3]) & (box[2] < b[:, 3])
        return not hit.any()

    def add(self, box: np.ndarray) -> None:
        self.bounds = np.vstack([self.bounds, box])


def _corners_bounds(centre: np.ndarray, half: tuple[float, float], yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    ex = abs(c) * half[0] + abs(s) * half[1]
    ey = abs(s) * half[0] + abs(c) * half[1]
    return np.array([centre[0] - ex, centre[0] + ex, centre[1] - ey, centre[1] + ey])


class _Layout:
    def __init__(self, roads: RoadNetwork, cfg: TownConfig) -> None:
        self.roads = roads
        self.cfg = cfg
        self.gen = rng(cfg.seed, SALT_LAYOUT)
        self.out = PrimitiveBuilder()
        self.footprints = _Footprints()
        self.group = 0

    def next_group(self) -> int:
        self.group += 1
        return self.group

    # -- buildings -----------------------------------------------------------------------
    def building_height(self, mean: float) -> float:
        g = self.gen
        lo, hi = self.cfg.building_height
        h = mean * math.exp(g.normal(0.0, 0.35))
        if g.random() < 0.05:
            h = g.uniform(max(lo, 0.6 * hi), hi)
        return float(np.clip(h, lo, hi))

    def facade(self) -> tuple[np.ndarray, float, tuple[float, ...]]:
        g = self.gen
        colour = FACADE_PALETTE[g.integers(len(FACADE_PALETTE))] + g.normal(0, 0.04, 3)
        colour = np.clip(colour, 0.05, 0.98).astype(np.float32)
        lum = float(colour @ np.array([0.3, 0.59, 0.11], dtype=np.float32))
        reflect = float(np.clip(0.12 + 0.35 * lum + g.normal(0, 0.03), 0.05, 0.8))
        style = (
            g.uniform(2.9, 3.9),  # floor height
            g.uniform(1.8, 4.2),  # window spacing
            g.uniform(0.3, 0.75),  # window width / spacing
            g.uniform(0.35, 0.7),  # window height / floor
            float(g.random() < 0.35),  # shop front
        )
        return colour, reflect, style

    def add_building(
        self, f: Frontage, along: float, width: float, setback: float, depth: float, height: float
    ) -> bool:
        g = self.gen
        jitter = g.normal(0, math.radians(1.2))
        if g.random() < 0.12:
            jitter = g.uniform(-math.radians(10), math.radians(10))
        # rotating about the centre brings the front corners forward: step back by that much
        setback += abs(math.sin(jitter)) * width / 2 + (1 - math.cos(jitter)) * depth / 2
        front = self.roads.half_walk + setback
        centre = f.point(along + width / 2, front + depth / 2)
        yaw = f.yaw + jitter
        bounds = _corners_bounds(centre, (width / 2, depth / 2), yaw)
        if not self.footprints.free(bounds):
            return False
        self.footprints.add(bounds)
        colour, reflect, style = self.facade()
        group = self.next_group()
        if height > 14 and g.random() < 0.3:
            # a tower set back on a podium: a stepped skyline
            podium = g.uniform(4.0, 8.0)
            self.out.box(
                tuple(centre), (width / 2, depth / 2), yaw, (0.0, podium), Material.FACADE,
                colour, reflect, group, style,
            )  # fmt: skip
            tw, td = width * g.uniform(0.5, 0.8), depth * g.uniform(0.5, 0.8)
            inset = min(g.uniform(2.0, 5.0), depth - td)
            tc = f.point(along + width / 2, front + inset + td / 2)
            if g.random() < 0.5:
                colour, reflect, style = self.facade()
            self.out.box(
                tuple(tc), (tw / 2, td / 2), yaw, (0.0, height), Material.FACADE, colour,
                reflect, self.next_group(), style,
            )  # fmt: skip
        else:
            self.out.box(
                tuple(centre), (width / 2, depth / 2), yaw, (0.0, height), Material.FACADE,
                colour, reflect, group, style,
            )  # fmt: skip
        return True

    # -- vegetation and street furniture -------------------------------------------------
    def tree(self, xy: np.ndarray, crown_radius: float, crown_base: float) -> None:
        g = self.gen
        group = self.next_group()
        r = crown_radius * g.uniform(0.8, 1.2)
        base = crown_base * g.uniform(0.9, 1.1)
        top = base + 2 * r * g.uniform(0.9, 1.3)
        trunk_r = float(np.clip(0.07 * r + g.uniform(0.0, 0.08), 0.1, 0.35))
        self.out.cylinder(
            tuple(xy), trunk_r, (0.0, base + 0.5 * r), Material.BARK, (0.30, 0.22, 0.15),
            0.25, group,
        )  # fmt: skip
        green = np.array([0.16, 0.34, 0.10]) * g.uniform(0.7, 1.3) + g.normal(0, 0.03, 3)
        self.out.cylinder(
            tuple(xy), r, (base, top), Material.FOLIAGE, np.clip(green, 0.03, 0.9),
            float(g.uniform(0.35, 0.5)), group, rounded=True,
        )  # fmt: skip

    def lamp(self, f: Frontage, along: float) -> None:
        g = self.gen
        group = self.next_group()
        lateral = self.roads.half_road + 0.4
        xy = f.point(along, lateral)
        height = g.uniform(6.5, 9.0)
        grey = np.full(3, g.uniform(0.25, 0.55))
        self.out.cylinder(tuple(xy), 0.1, (0.0, height), Material.METAL, grey, 0.55, group)
        arm = g.uniform(1.2, 2.5)
        arm_xy = f.point(along, lateral - arm / 2)
        self.out.box(
            tuple(arm_xy), (0.08, arm / 2), f.yaw, (height - 0.25, height - 0.05),
            Material.METAL, grey, 0.55, group,
        )  # fmt: skip

    def utility_pole(self, f: Frontage, along: float) -> None:
        xy = f.point(along, self.roads.half_road + 0.5)
        height = self.gen.uniform(9.0, 12.0)
        self.out.cylinder(
            tuple(xy), 0.15, (0.0, height), Material.BARK, (0.35, 0.27, 0.2), 0.3,
            self.next_group(),
        )  # fmt: skip

    def sign(self, f: Frontage, along: float) -> None:
        g = self.gen
        group = self.next_group()
        xy = f.point(along, self.roads.half_road + 0.5)
        self.out.cylinder(tuple(xy), 0.04, (0.0, 2.8), Material.METAL, (0.5, 0.5, 0.5), 0.5, group)
        plate = _SIGN_COLOURS[g.integers(len(_SIGN_COLOURS))]
        # the plate faces traffic: its thin axis runs along the street
        self.out.box(
            tuple(xy), (0.03, 0.35), f.yaw, (2.0, 2.75), Material.METAL, plate, 0.85, group,
        )  # fmt: skip

    def hedge_or_wall(self, f: Frontage, along: float, width: float, hedge: bool) -> None:
        g = self.gen
        thick = 0.8 if hedge else 0.3
        centre = f.point(along + width / 2, self.roads.half_walk + 0.2 + thick / 2)
        height = g.uniform(1.0, 1.8) if hedge else g.uniform(1.2, 2.6)
        if hedge:
            colour = np.clip(np.array([0.14, 0.30, 0.10]) * g.uniform(0.7, 1.2), 0, 1)
            material, reflect = Material.FOLIAGE, 0.4
        else:
            colour = np.clip(FACADE_PALETTE[g.integers(len(FACADE_PALETTE))] * 0.9, 0, 1)
            material, reflect = Material.WALL, float(g.uniform(0.2, 0.4))
        self.out.box(
            tuple(centre), (width / 2, thick / 2), f.yaw, (0.0, height), material, colour,
            reflect, self.next_group(),
        )  # fmt: skip

    # -- one side of one street ----------------------------------------------------------
    def frontage(self, f: Frontage) -> None:
        g = self.gen
        roads = self.roads
        start = roads.half_walk + g.uniform(0.5, 3.0)
        end = f.length - roads.half_walk - g.uniform(0.5, 3.0)
        # the street side's character
        mean_height = math.exp(g.uniform(math.log(6.0), math.log(28.0)))
        roll = g.random()
        base_setback = (
            g.uniform(0.2, 1.5) if roll < 0.5 else g.uniform(1.5, 5.0) if roll < 0.85 else
            g.uniform(5.0, 10.0)
        )  # fmt: skip
        far_limit = roads.half_walk + 30.0 if math.isinf(f.room) else f.room / 2 - 0.5
        along = start + g.uniform(0.0, 3.0)
        while end - along > 6.0:
            roll = g.random()
            if roll < 0.10:  # a small park
                width = min(g.uniform(12.0, 30.0), end - along)
                for _ in range(g.integers(1, 5)):
                    lateral = roads.half_walk + g.uniform(2.0, max(3.0, min(15.0, far_limit - 12)))
                    self.tree(f.point(along + g.uniform(0, width), lateral), g.uniform(2, 4), 2.5)
                if g.random() < 0.4:
                    self.hedge_or_wall(f, along, width, hedge=True)
            elif roll < 0.17:  # a walled gap
                width = min(g.uniform(4.0, 14.0), end - along)
                self.hedge_or_wall(f, along, width, hedge=False)
            else:
                width = min(g.uniform(6.0, 26.0), end - along)
                setback = base_setback + abs(g.normal(0.0, 0.6))
                if g.random() < 0.12:
                    setback += g.uniform(2.0, 6.0)
                depth = min(g.uniform(10.0, 24.0), far_limit - roads.half_walk - setback - 1.0)
                height = self.building_height(mean_height)
                if depth >= 6.0 and not self.add_building(f, along, width, setback, depth, height):
                    along += 3.0  # the corner is taken by the cross street: try further on
                    continue
            gap_roll = g.random()
            if gap_roll < 0.4:
                gap = 0.0
            else:
                gap = g.uniform(1.0, 4.0) if gap_roll < 0.8 else g.uniform(4.0, 12.0)
            along += width + gap

    def street_furniture(self, f: Frontage) -> None:
        g = self.gen
        roads = self.roads
        lo, hi = roads.half_walk + 1.0, f.length - roads.half_walk - 1.0
        if g.random() < self.cfg.tree_lined:
            radius, base = g.uniform(1.6, 3.2), g.uniform(2.3, 3.5)
            along = lo + g.uniform(0.0, 5.0)
            while along < hi:
                if g.random() > 0.2:
                    lateral = roads.half_road + 1.0 + g.normal(0.0, 0.1)
                    self.tree(f.point(along, lateral), radius, base)
                along += g.uniform(6.0, 13.0)
        elif g.random() < 0.25:
            for _ in range(g.integers(1, 3)):
                lateral = roads.half_road + 1.2
                self.tree(f.point(g.uniform(lo, hi), lateral), g.uniform(1.8, 3.5), 2.8)
        if g.random() < 0.5:
            along = lo + g.uniform(3.0, 15.0)
            while along < hi:
                self.lamp(f, along)
                along += g.uniform(24.0, 36.0)
        if g.random() < 0.15:
            along = lo + g.uniform(0.0, 20.0)
            while along < hi:
                self.utility_pole(f, along)
                along += g.uniform(35.0, 50.0)
        for end in (lo + g.uniform(0.5, 4.0), hi - g.uniform(0.5, 4.0)):
            if g.random() < 0.35:
                self.sign(f, end)


def build_static(roads: RoadNetwork, cfg: TownConfig) -> Primitives:
    """Every object of the town that does not change between traversals."""
    layout = _Layout(roads, cfg)
    sides = frontages(roads)
    for k in layout.gen.permutation(len(sides)):
        layout.frontage(sides[k])
    for f in sides:
        layout.street_furniture(f)
    return layout.out.build()
