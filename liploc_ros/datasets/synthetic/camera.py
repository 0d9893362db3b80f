"""The forward pinhole camera: KITTI image_2 geometry (scaled), rendered by column casting.

The camera is level (no pitch or roll), so each image column is one vertical plane of rays
(azimuth from the column's x, slope per row from its y) and the whole image is one
:func:`raycast.cast` call. Shading is flat-Lambertian with the traversal's sun, windows and
ground markings from the shared materials, world-anchored textures, haze and a sky gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import (
    KITTI_CX,
    KITTI_CY,
    KITTI_FX,
    RigConfig,
)
from liploc_ros.datasets.synthetic.lighting import Light
from liploc_ros.datasets.synthetic.materials import BASE_COLOUR, Material
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.raycast import GROUND, ROOF, UNDERSIDE, RayFan, cast
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.seeding import SALT_TEXTURE, hash01
from liploc_ros.datasets.synthetic.surfaces import surface_materials

#: haze: a surface this far away keeps 1/e of its own colour (the rest is sky)
HAZE_DISTANCE = 350.0
_LIT_WINDOW = np.array([0.85, 0.72, 0.45], dtype=np.float32)


@dataclass
class CameraRender:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 z-depth in the optical frame, inf for sky
    material: np.ndarray  # (H, W) uint8 Material (NONE for sky)


class PinholeCamera:
    """Intrinsics and the ray fan of the rig's camera."""

    def __init__(self, rig: RigConfig) -> None:
        W, H = rig.image_size
        # square pixels as KITTI's; scaled about pixel corners (the size is rounded, so the
        # field of view may differ from KITTI's by a fraction of a pixel at the edges)
        scale = rig.image_scale
        fx = fy = KITTI_FX * scale
        cx, cy = (KITTI_CX + 0.5) * scale - 0.5, (KITTI_CY + 0.5) * scale - 0.5
        self.width, self.height = W, H
        self.K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        xn = (np.arange(W)[::-1] - cx) / fx  # fan columns: ascending azimuth = right to left
        yn = (np.arange(H) - cy) / fy
        norm = np.sqrt(1.0 + xn * xn)
        #: forward (optical z) distance per metre of horizontal distance, per fan column
        self.depth_per_metre = 1.0 / norm
        self.fan = RayFan(-np.arctan(xn), -yn[None, :] / norm[:, None], wrap=False)
        #: (columns, rows, 1) blend of the sky from horizon (0) to zenith (1) colour
        self.sky_weight = (
            np.clip(np.arctan(self.fan.slopes) / 0.3, 0.0, 1.0).astype(np.float32)[..., None]
            ** 0.7
        )

    def to_image(self, a: np.ndarray) -> np.ndarray:
        """A (columns, rows, ...) fan array as a C-contiguous (H, W, ...) image."""
        return np.ascontiguousarray(np.swapaxes(a, 0, 1)[:, ::-1])


def _texture(x: np.ndarray, y: np.ndarray, cell: float, salt: int) -> np.ndarray:
    return hash01(np.floor(x / cell).astype(np.int64), np.floor(y / cell).astype(np.int64), salt)


def _object_colours(
    prims: Primitives,
    prim: np.ndarray,
    mat: np.ndarray,
    var: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    light: Light,
) -> np.ndarray:
    """Unlit colour of object hits: the object's own, glass varying per window (some lit),
    darker roofs, leaves with a world-anchored dapple."""
    col = prims.colour[prim].copy()
    glass = mat == Material.GLASS
    if glass.any():
        v = var[glass, None].astype(np.float32)
        g = BASE_COLOUR[Material.GLASS] * (0.5 + 1.6 * v) + 0.25 * light.sky_horizon * v
        col[glass] = np.where(v > 0.93, _LIT_WINDOW, g)
    roof = mat == Material.ROOF
    col[roof] = 0.45 * col[roof] + 0.12
    fixed = (mat == Material.CAR_GLASS) | (mat == Material.TYRE)
    col[fixed] = BASE_COLOUR[mat[fixed]]
    leaves = mat == Material.FOLIAGE
    if leaves.any():
        cells = (
            np.floor(x[leaves] / 0.4).astype(np.int64),
            np.floor(y[leaves] / 0.4).astype(np.int64),
            np.floor(z[leaves] / 0.4).astype(np.int64),
        )
        col[leaves] *= (0.65 + 0.7 * hash01(*cells, SALT_TEXTURE)).astype(np.float32)[:, None]
    return col


def _ground_colours(mat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unlit colour of ground hits, with world-anchored grain and paving joints."""
    col = BASE_COLOUR[mat].copy()
    fine = _texture(x, y, 0.25, 1)
    coarse = _texture(x, y, 3.0, 2)
    shade = 0.9 + 0.12 * fine + 0.08 * coarse
    grass = mat == Material.GRASS
    shade[grass] = 0.75 + 0.5 * fine[grass]
    walk = mat == Material.SIDEWALK
    joints = (np.mod(x, 1.5) < 0.06) | (np.mod(y, 1.5) < 0.06)
    shade[walk & joints] *= 0.8
    return col * shade.astype(np.float32)[:, None]


def render_camera(
    prims: Primitives,
    roads: RoadNetwork,
    camera: PinholeCamera,
    origin: tuple[float, float],
    height: float,
    yaw: float,
    light: Light,
    gen: np.random.Generator,
    max_range: float,
    noise: float,
) -> CameraRender:
    """Image, depth and material map seen from ``origin`` at ``height`` facing ``yaw``."""
    hits = cast(prims, camera.fan, origin, height, yaw, max_range)
    C, R = hits.shape
    mat, var = surface_materials(prims, roads, hits)
    colour = np.empty((len(mat), 3), dtype=np.float32)

    o = np.flatnonzero(hits.kind != GROUND)
    if len(o):
        prim, kind = hits.prim[o], hits.kind[o]
        x, y, z = hits.x[o], hits.y[o], hits.z[o]
        col = _object_colours(prims, prim, mat[o], var[o], x, y, z, light)
        nx, ny = hits.nx[o], hits.ny[o]
        nz = np.where(kind == ROOF, 1.0, np.where(kind == UNDERSIDE, -1.0, 0.0))
        rounded = prims.rounded[prim]
        if rounded.any():
            mid = 0.5 * (prims.z0[prim] + prims.z1[prim])
            half = 0.5 * (prims.z1[prim] - prims.z0[prim])
            up = np.clip((z - mid) / half, -1.0, 1.0)
            flat = np.sqrt(1.0 - up * up)
            nx = np.where(rounded, nx * flat, nx)
            ny = np.where(rounded, ny * flat, ny)
            nz = np.where(rounded, up, nz)
        sun = light.sun
        lambert = np.maximum(0.0, nx * sun[0] + ny * sun[1] + nz * sun[2])
        colour[o] = col * (light.ambient + light.diffuse * lambert).astype(np.float32)[:, None]
    g = np.flatnonzero(hits.kind == GROUND)
    if len(g):
        col = _ground_colours(mat[g], hits.x[g], hits.y[g])
        colour[g] = col * np.float32(light.ambient + light.diffuse * max(light.sun[2], 0.0))

    dist3 = hits.dist * np.sqrt(1.0 + hits.slope * hits.slope)
    haze = (1.0 - np.exp(-dist3 / HAZE_DISTANCE)).astype(np.float32)[:, None]
    colour = colour * (1 - haze) + light.sky_horizon * haze
    w = camera.sky_weight
    canvas = (light.sky_horizon * (1 - w) + light.sky_zenith * w).reshape(-1, 3)
    canvas[hits.index] = colour
    pixels = canvas * (light.gain * 255.0)
    if noise > 0:
        pixels += gen.standard_normal(pixels.shape, dtype=np.float32) * np.float32(noise)
    image = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(C, R, 3)
    depth = np.full(C * R, np.inf, dtype=np.float32)
    depth[hits.index] = hits.dist * camera.depth_per_metre[hits.col]
    material = np.zeros(C * R, dtype=np.uint8)
    material[hits.index] = mat
    return CameraRender(
        image=camera.to_image(image),
        depth=camera.to_image(depth.reshape(C, R)),
        material=camera.to_image(material.reshape(C, R)),
    )
