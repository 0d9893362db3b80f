"""What a hit point is made of: the one place where camera and LiDAR learn the material.

Buildings get a window grid from the hit's position along the facade and its height (and a
shop front on some ground floors), cars get glass and tyres by height, everything else keeps
the material of its object or of the ground. A per-cell hash ("variation") lets the camera
vary windows (dark, reflective, lit) without breaking the shared geometry.
"""

from __future__ import annotations

import numpy as np

from liploc_ros.datasets.synthetic.materials import Material
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.raycast import GROUND, ROOF, WALL, Hits
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.seeding import hash01

#: windows keep this far from a facade's vertical edges and from its top
_EDGE_MARGIN = 0.5
_PARAPET = 0.7


def _facade_windows(
    prims: Primitives, prim: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(is glass, per-window hash) of wall hits on buildings."""
    dx, dy = x - prims.cx[prim], y - prims.cy[prim]
    c, s = prims.cos[prim], prims.sin[prim]
    lx, ly = dx * c + dy * s, -dx * s + dy * c
    hx, hy = prims.hx[prim], prims.hy[prim]
    on_x_face = np.abs(lx) * hy > np.abs(ly) * hx
    u = np.where(on_x_face, ly, lx)
    half = np.where(on_x_face, hy, hx)
    face = on_x_face * 2 + (np.where(on_x_face, lx, ly) > 0)
    style = prims.style[prim]
    floor_h, spacing, win_w, win_h, shop = (style[:, k] for k in range(5))
    n_win = np.maximum(1.0, np.round(2 * half / spacing))
    fu = (u + half) * n_win / (2 * half)
    col = np.floor(fu)
    uf = fu - col
    fz = z / floor_h
    row = np.floor(fz)
    zf = fz - row
    inside = (np.abs(u) < half - _EDGE_MARGIN) & (z < prims.z1[prim] - _PARAPET)
    regular = (np.abs(uf - 0.5) < win_w / 2) & (np.abs(zf - 0.55) < win_h / 2)
    shopfront = (row == 0) & (shop > 0) & (np.abs(uf - 0.5) < 0.44) & (zf > 0.12) & (zf < 0.8)
    glass = inside & ((regular & ((row >= 1) | (shop == 0))) | shopfront)
    variation = hash01(prims.group[prim], face, col.astype(np.int64), row.astype(np.int64))
    return glass, variation


def surface_materials(
    prims: Primitives, roads: RoadNetwork, hits: Hits
) -> tuple[np.ndarray, np.ndarray]:
    """(material, variation) of every hit, objects and ground alike."""
    mat = np.empty(len(hits.kind), dtype=np.uint8)
    variation = np.zeros(len(hits.kind))
    ground = hits.kind == GROUND
    g = np.flatnonzero(ground)
    mat[g] = roads.ground_material(hits.x[g], hits.y[g])
    o = np.flatnonzero(~ground)
    prim, kind, z = hits.prim[o], hits.kind[o], hits.z[o]
    m = prims.material[prim]
    building = m == Material.FACADE
    sel = np.flatnonzero(building & (kind == WALL))
    if len(sel):
        glass, var = _facade_windows(prims, prim[sel], hits.x[o[sel]], hits.y[o[sel]], z[sel])
        m[sel[glass]] = Material.GLASS
        variation[o[sel]] = var
    m[(building | (m == Material.WALL)) & (kind == ROOF)] = Material.ROOF
    car = m == Material.CAR_BODY
    cabin = car & (prims.z0[prim] > 0)
    m[cabin & (kind == WALL) & (z < prims.z1[prim] - 0.08)] = Material.CAR_GLASS
    m[car & (z < 0.3)] = Material.TYRE
    mat[o] = m
    return mat, variation
