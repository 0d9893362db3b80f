"""Surface materials: what the camera colours and the LiDAR's intensity both derive from.

One material code per surface point, shared by the two sensors, is what makes a place look
alike to both: a glass band is dark in the image and weak in the scan, lane paint is bright
in both.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Material(IntEnum):
    NONE = 0  # sky, no return
    ASPHALT = 1
    LANE_PAINT = 2
    SIDEWALK = 3
    KERB = 4
    GRASS = 5
    PAVING = 6
    FACADE = 7
    GLASS = 8
    ROOF = 9
    CAR_BODY = 10
    CAR_GLASS = 11
    TYRE = 12
    BARK = 13
    FOLIAGE = 14
    METAL = 15
    WALL = 16


#: materials whose LiDAR reflectivity and colour come from the object (building, car, wall)
PER_OBJECT = (Material.FACADE, Material.CAR_BODY, Material.WALL, Material.METAL, Material.FOLIAGE)

#: LiDAR reflectivity (KITTI-like intensity, 0..1) of each material at normal incidence
REFLECTIVITY = np.zeros(len(Material), dtype=np.float32)
REFLECTIVITY[Material.ASPHALT] = 0.10
REFLECTIVITY[Material.LANE_PAINT] = 0.62
REFLECTIVITY[Material.SIDEWALK] = 0.26
REFLECTIVITY[Material.KERB] = 0.32
REFLECTIVITY[Material.GRASS] = 0.38
REFLECTIVITY[Material.PAVING] = 0.22
REFLECTIVITY[Material.FACADE] = 0.30
REFLECTIVITY[Material.GLASS] = 0.04
REFLECTIVITY[Material.ROOF] = 0.18
REFLECTIVITY[Material.CAR_BODY] = 0.30
REFLECTIVITY[Material.CAR_GLASS] = 0.04
REFLECTIVITY[Material.TYRE] = 0.05
REFLECTIVITY[Material.BARK] = 0.25
REFLECTIVITY[Material.FOLIAGE] = 0.42
REFLECTIVITY[Material.METAL] = 0.55
REFLECTIVITY[Material.WALL] = 0.28

#: linear RGB (0..1) of materials whose colour is not the object's own
BASE_COLOUR = np.zeros((len(Material), 3), dtype=np.float32)
BASE_COLOUR[Material.ASPHALT] = (0.27, 0.27, 0.29)
BASE_COLOUR[Material.LANE_PAINT] = (0.86, 0.86, 0.82)
BASE_COLOUR[Material.SIDEWALK] = (0.58, 0.56, 0.53)
BASE_COLOUR[Material.KERB] = (0.72, 0.72, 0.70)
BASE_COLOUR[Material.GRASS] = (0.28, 0.44, 0.18)
BASE_COLOUR[Material.PAVING] = (0.50, 0.46, 0.41)
BASE_COLOUR[Material.GLASS] = (0.13, 0.16, 0.21)
BASE_COLOUR[Material.CAR_GLASS] = (0.07, 0.08, 0.10)
BASE_COLOUR[Material.TYRE] = (0.04, 0.04, 0.04)
BASE_COLOUR[Material.BARK] = (0.30, 0.22, 0.15)

#: facade colours (linear RGB) buildings draw from: render, brick, concrete, paint
FACADE_PALETTE = np.array(
    [
        (0.85, 0.80, 0.68),
        (0.62, 0.30, 0.22),
        (0.72, 0.72, 0.70),
        (0.93, 0.92, 0.88),
        (0.80, 0.66, 0.38),
        (0.48, 0.55, 0.62),
        (0.70, 0.50, 0.40),
        (0.40, 0.40, 0.42),
        (0.86, 0.74, 0.62),
        (0.55, 0.62, 0.50),
        (0.78, 0.56, 0.52),
        (0.30, 0.32, 0.38),
    ],
    dtype=np.float32,
)

#: car paint colours (linear RGB)
CAR_PALETTE = np.array(
    [
        (0.92, 0.92, 0.92),
        (0.08, 0.08, 0.09),
        (0.55, 0.56, 0.58),
        (0.62, 0.08, 0.07),
        (0.10, 0.20, 0.45),
        (0.75, 0.75, 0.78),
        (0.20, 0.30, 0.22),
        (0.85, 0.70, 0.20),
        (0.30, 0.30, 0.32),
    ],
    dtype=np.float32,
)
