"""The world's solid objects as vertical extrusions ("2.5D"): boxes and cylinders on z = 0.

Every object is a footprint (an oriented rectangle or a circle) extruded between two heights.
That is what lets one sensor column be cast as a 2D ray against footprints and every
elevation of the column be resolved at once (see raycast.py). Objects are held as a
structure of arrays so that culling and intersection are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

BOX, CYLINDER = 0, 1
#: facade style columns: floor height, window spacing, window width and height (fractions
#: of the spacing and the floor), shop front on the ground floor (0/1)
STYLE_COLUMNS = 5


@dataclass
class Primitives:
    """Boxes (footprint: centre, half sizes, yaw) and cylinders (centre, radius = hx)."""

    shape: np.ndarray  # (n,) uint8 BOX or CYLINDER
    cx: np.ndarray  # (n,) float64 footprint centre
    cy: np.ndarray
    hx: np.ndarray  # half length along the box's own x axis; cylinder radius
    hy: np.ndarray  # half width along the box's own y axis
    cos: np.ndarray  # box yaw
    sin: np.ndarray
    z0: np.ndarray  # bottom and top of the extrusion
    z1: np.ndarray
    rounded: np.ndarray  # (n,) bool: a crown, whose height span shrinks towards its rim
    material: np.ndarray  # (n,) uint8 Material of the side surface
    colour: np.ndarray  # (n, 3) float32 linear RGB
    reflectivity: np.ndarray  # (n,) float32 LiDAR reflectivity of the side surface
    style: np.ndarray  # (n, STYLE_COLUMNS) float32 facade style (buildings only)
    group: np.ndarray  # (n,) int64 id of the object a primitive belongs to (hash key)

    def __len__(self) -> int:
        return len(self.shape)

    @property
    def bound_radius(self) -> np.ndarray:
        """Radius of a circle around the footprint, for distance culling."""
        return np.where(self.shape == BOX, np.hypot(self.hx, self.hy), self.hx)

    @staticmethod
    def concat(parts: list[Primitives]) -> Primitives:
        return Primitives(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(Primitives)
            }
        )


class PrimitiveBuilder:
    """Collects objects one at a time while a town is laid out."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self._rows)

    def box(
        self,
        centre: tuple[float, float],
        half: tuple[float, float],
        yaw: float,
        z: tuple[float, float],
        material: int,
        colour: tuple[float, float, float] | np.ndarray,
        reflectivity: float,
        group: int,
        style: tuple[float, ...] = (0.0,) * STYLE_COLUMNS,
    ) -> None:
        self._rows.append(
            (BOX, *centre, *half, np.cos(yaw), np.sin(yaw), *z, False, material, tuple(colour),
             reflectivity, tuple(style), group)
        )  # fmt: skip

    def cylinder(
        self,
        centre: tuple[float, float],
        radius: float,
        z: tuple[float, float],
        material: int,
        colour: tuple[float, float, float] | np.ndarray,
        reflectivity: float,
        group: int,
        rounded: bool = False,
    ) -> None:
        self._rows.append(
            (CYLINDER, *centre, radius, radius, 1.0, 0.0, *z, rounded, material, tuple(colour),
             reflectivity, (0.0,) * STYLE_COLUMNS, group)
        )  # fmt: skip

    def build(self) -> Primitives:
        rows = self._rows
        col = list(zip(*rows, strict=True)) if rows else [()] * 15
        return Primitives(
            shape=np.array(col[0], dtype=np.uint8),
            cx=np.array(col[1], dtype=np.float64),
            cy=np.array(col[2], dtype=np.float64),
            hx=np.array(col[3], dtype=np.float64),
            hy=np.array(col[4], dtype=np.float64),
            cos=np.array(col[5], dtype=np.float64),
            sin=np.array(col[6], dtype=np.float64),
            z0=np.array(col[7], dtype=np.float64),
            z1=np.array(col[8], dtype=np.float64),
            rounded=np.array(col[9], dtype=bool),
            material=np.array(col[10], dtype=np.uint8),
            colour=np.array(col[11], dtype=np.float32).reshape(-1, 3),
            reflectivity=np.array(col[12], dtype=np.float32),
            style=np.array(col[13], dtype=np.float32).reshape(-1, STYLE_COLUMNS),
            group=np.array(col[14], dtype=np.int64),
        )
