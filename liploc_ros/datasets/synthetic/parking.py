"""Parked cars: kerb slots, and which of them hold which car during a traversal.

A slot's occupancy and car are a hash of (town seed, slot, epoch). The town's own cars are
epoch 0; a traversal re-draws a fraction of the slots with its own index as epoch, which
moves, removes and adds cars between traversals while the rest stay exactly where they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.layout import frontages
from liploc_ros.datasets.synthetic.materials import CAR_PALETTE, Material
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.seeding import SALT_CARS, hash01

#: length of a kerb parking slot
SLOT_LENGTH = 6.0
#: group ids of parked cars start here (static objects count from 0)
CAR_GROUP_BASE = 10_000_000


@dataclass(frozen=True)
class CarSlots:
    """Kerb parking slots: centre, heading of a car parked there, street direction."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def make_car_slots(roads: RoadNetwork) -> CarSlots:
    xs, ys, yaws = [], [], []
    lateral = roads.lane_width + roads.parking_width / 2
    for f in frontages(roads):
        lo = roads.half_walk + 2.5
        n_slots = int((f.length - 2 * lo) // SLOT_LENGTH)
        if n_slots <= 0:
            continue
        along = lo + SLOT_LENGTH * (np.arange(n_slots) + 0.5)
        p = f.point(along, lateral)
        # right-hand traffic: a car parked on the side n faces along t when n is t's right
        right = f.n[0] * f.t[1] - f.n[1] * f.t[0] > 0
        yaw = f.yaw if right else f.yaw + math.pi
        xs.append(p[:, 0])
        ys.append(p[:, 1])
        yaws.append(np.full(n_slots, yaw))
    return CarSlots(np.concatenate(xs), np.concatenate(ys), np.concatenate(yaws))


def parked_cars(
    slots: CarSlots, seed: int, traversal: int, change: float, density: float
) -> Primitives:
    """The cars parked during ``traversal``: slots re-drawn with probability ``change``."""
    sid = np.arange(len(slots), dtype=np.int64)
    changed = np.zeros(len(slots), dtype=bool)
    if traversal > 0 and change > 0:
        changed = hash01(seed, SALT_CARS, sid, traversal, 1) < change
    epoch = np.where(changed, traversal, 0)

    def u(k: int) -> np.ndarray:
        return hash01(seed, SALT_CARS, sid, epoch, 100 + k)

    keep = u(0) < density
    van = u(1) < 0.12
    length = np.where(van, 5.0, 3.9) + u(2)
    width = np.where(van, 2.0, 1.72 + 0.22 * u(3))
    height = np.where(van, 1.9 + 0.6 * u(4), 1.40 + 0.25 * u(4))
    along = (u(5) - 0.5) * 0.8 * np.maximum(SLOT_LENGTH - length, 0.2)
    lateral = (u(6) - 0.5) * 0.3
    yaw = slots.yaw + (u(7) - 0.5) * 0.06
    c, s = np.cos(slots.yaw), np.sin(slots.yaw)
    cx = slots.x + c * along - s * lateral
    cy = slots.y + s * along + c * lateral
    colour = CAR_PALETTE[(u(8) * len(CAR_PALETTE)).astype(int)] * (0.9 + 0.2 * u(9))[:, None]
    colour = np.clip(colour, 0, 1).astype(np.float32)
    reflect = (0.15 + 0.3 * colour @ np.array([0.3, 0.59, 0.11], dtype=np.float32)).astype(
        np.float32
    )
    # two boxes per car: the body up to the waist line, and the (glazed) cabin on top of it
    waist = np.where(van, 1.0, 0.82 + 0.06 * u(10))
    cabin_len = length * np.where(van, 0.8, 0.48 + 0.1 * u(11))
    cabin_shift = -np.where(van, 0.1, 0.05) * length
    k = np.flatnonzero(keep)
    n = len(k)
    cc, ss = np.cos(yaw[k]), np.sin(yaw[k])
    both = np.r_[k, k]
    return Primitives(
        shape=np.zeros(2 * n, dtype=np.uint8),
        cx=np.r_[cx[k], cx[k] + cc * cabin_shift[k]],
        cy=np.r_[cy[k], cy[k] + ss * cabin_shift[k]],
        hx=np.r_[length[k], cabin_len[k]] / 2,
        hy=np.r_[width[k], width[k] - 0.12] / 2,
        cos=np.r_[cc, cc],
        sin=np.r_[ss, ss],
        z0=np.r_[np.zeros(n), waist[k]],
        z1=np.r_[waist[k], height[k]],
        rounded=np.zeros(2 * n, dtype=bool),
        material=np.full(2 * n, Material.CAR_BODY, dtype=np.uint8),
        colour=colour[both],
        reflectivity=reflect[both],
        style=np.zeros((2 * n, 5), dtype=np.float32),
        group=CAR_GROUP_BASE + sid[both],
    )
