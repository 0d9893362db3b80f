"""The spinning LiDAR: HDL-64E-like beams over 360 degrees, by the same column casting.

Each azimuth step is one vertical fan of 64 beams. Returns get Gaussian range noise, an
intensity from the shared material (reflectivity scaled by the angle of incidence), random
dropouts (more on glass, which a real LiDAR mostly sees through) and none from the sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import RigConfig
from liploc_ros.datasets.synthetic.materials import PER_OBJECT, REFLECTIVITY, Material
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.raycast import WALL, RayFan, cast
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.surfaces import surface_materials

#: extra dropout probability on glass
GLASS_DROPOUT = 0.4
#: extra range noise (m) in foliage, where returns come from leaves at varying depth
FOLIAGE_NOISE = 0.08


@dataclass
class LidarRender:
    points: np.ndarray  # (N, 4) float32 x, y, z, intensity in the LiDAR frame
    material: np.ndarray  # (N,) uint8 Material of each point


_OWN_REFLECTIVITY = np.zeros(len(Material), dtype=bool)
_OWN_REFLECTIVITY[list(PER_OBJECT)] = True


class LidarModel:
    """Beam elevations and azimuth steps of the rig's LiDAR."""

    def __init__(self, rig: RigConfig) -> None:
        up, down = np.radians(rig.lidar_fov_deg)
        #: (beams,) elevation, top beam first
        self.elevation = np.linspace(up, down, rig.lidar_beams)
        steps = rig.lidar_azimuth_steps
        #: (steps,) azimuth in the LiDAR frame (x forward, y left), ascending from -pi
        self.azimuth = -np.pi + (np.arange(steps) + 0.5) * (2 * np.pi / steps)
        self.fan = RayFan(self.azimuth, np.tan(self.elevation)[None, :], wrap=True)
        self.cos_elevation = np.cos(self.elevation)
        self.sin_elevation = np.sin(self.elevation)
        self.abs_sin_elevation = np.abs(self.sin_elevation)
        self.cos_azimuth = np.cos(self.azimuth)
        self.sin_azimuth = np.sin(self.azimuth)
        self.max_range = rig.lidar_max_range
        self.range_noise = rig.range_noise
        self.dropout = rig.dropout


def render_lidar(
    prims: Primitives,
    roads: RoadNetwork,
    lidar: LidarModel,
    origin: tuple[float, float],
    height: float,
    yaw: float,
    gen: np.random.Generator,
) -> LidarRender:
    """One scan from ``origin`` at ``height`` facing ``yaw``, in the LiDAR frame."""
    hits = cast(prims, lidar.fan, origin, height, yaw, lidar.max_range)
    row, col = hits.row, hits.col
    r = hits.dist / lidar.cos_elevation[row]
    mat, _ = surface_materials(prims, roads, hits)
    reflect = REFLECTIVITY[mat]
    own = np.flatnonzero(_OWN_REFLECTIVITY[mat] & (hits.prim >= 0))
    reflect[own] = prims.reflectivity[hits.prim[own]]
    # cosine of the angle of incidence: walls by their normal, flat surfaces by the elevation
    facing = np.abs(hits.nx * hits.cos_t[col] + hits.ny * hits.sin_t[col])
    cos_i = np.where(
        hits.kind == WALL, facing * lidar.cos_elevation[row], lidar.abs_sin_elevation[row]
    )
    n = len(r)
    glass = (mat == Material.GLASS) | (mat == Material.CAR_GLASS)
    drop = gen.random(n) < lidar.dropout + GLASS_DROPOUT * glass
    sigma = lidar.range_noise + FOLIAGE_NOISE * (mat == Material.FOLIAGE)
    r = r + gen.standard_normal(n, dtype=np.float32) * sigma
    intensity = reflect * (0.35 + 0.65 * cos_i) + 0.015 * gen.standard_normal(n, dtype=np.float32)
    keep = np.flatnonzero(~drop & (r > 0.0) & (r <= lidar.max_range))
    r, row, col = r[keep], row[keep], col[keep]
    horizontal = r * lidar.cos_elevation[row]
    points = np.empty((len(keep), 4), dtype=np.float32)
    points[:, 0] = horizontal * lidar.cos_azimuth[col]
    points[:, 1] = horizontal * lidar.sin_azimuth[col]
    points[:, 2] = r * lidar.sin_elevation[row]
    points[:, 3] = np.clip(intensity[keep], 0.0, 1.0)
    return LidarRender(points=points, material=mat[keep])
