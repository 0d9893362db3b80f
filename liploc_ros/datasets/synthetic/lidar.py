"""The spinning LiDAR: HDL-64E-like beams over 360 degrees, by the same column casting.

Each azimuth step is one vertical fan of 64 beams. Returns get Gaussian range noise, an
intensity from the shared material (reflectivity scaled by the angle of incidence), random
dropouts (more on glass, which a real LiDAR mostly sees through) and none from the sky.

A :class:`ScanWindow` restricts the rays cast to the part of the scan a consumer will look
at (training only sees the forward, upper crop of the range image: a sixth of the rays; or
that crop at a few headings, e.g. forward and rear).
The random draws are made per ray of the whole scan, so a windowed scan's points are
exactly the full scan's points whose rays lie in the window, in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import RigConfig
from liploc_ros.datasets.synthetic.materials import PER_OBJECT, REFLECTIVITY, Material
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.raycast import WALL, RayFan, cast
from liploc_ros.datasets.synthetic.roads import RoadNetwork
from liploc_ros.datasets.synthetic.surfaces import surface_materials
from liploc_ros.errors import ConfigError
from liploc_ros.geometry import wrap

#: extra dropout probability on glass
GLASS_DROPOUT = 0.4
#: extra range noise (m) in foliage, where returns come from leaves at varying depth
FOLIAGE_NOISE = 0.08
#: rays this close (radians) outside a window are still cast: a point's direction agrees
#: with its beam's only to float32 rounding
ANGLE_MARGIN = 1e-3
#: returns this far (m) beyond a window's range are still cast, so range noise cannot
#: carry a return across the limit unseen (50 sigma of the default noise, 10 in foliage)
RANGE_MARGIN = 1.0


@dataclass(frozen=True)
class ScanWindow:
    """Directions and ranges of a scan someone will use; the rest need not be rendered.

    Angles are in radians in the LiDAR frame (x forward, y left, z up): ``azimuth`` is
    (centre, half width), elevations are bounds; ``max_range`` bounds the range in metres.
    ``extra_centres`` adds arcs of the same half width around further azimuths (a range
    image cropped at several headings); the rays of their union are cast.
    """

    azimuth_centre: float = 0.0
    azimuth_half_width: float = math.pi
    min_elevation: float = -math.pi / 2
    max_elevation: float = math.pi / 2
    max_range: float = math.inf
    extra_centres: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.azimuth_half_width <= math.pi:
            raise ConfigError(
                f"scan window half width must be in (0, pi], got {self.azimuth_half_width}"
            )
        if not all(math.isfinite(c) for c in (self.azimuth_centre, *self.extra_centres)):
            raise ConfigError("scan window azimuth centres must be finite")
        if not self.min_elevation < self.max_elevation:
            raise ConfigError(
                f"scan window elevations must rise: {self.min_elevation} .. {self.max_elevation}"
            )
        if not self.max_range > 0:
            raise ConfigError(f"scan window max_range must be positive, got {self.max_range}")


@dataclass
class LidarRender:
    points: np.ndarray  # (N, 4) float32 x, y, z, intensity in the LiDAR frame
    material: np.ndarray  # (N,) uint8 Material of each point


_OWN_REFLECTIVITY = np.zeros(len(Material), dtype=bool)
_OWN_REFLECTIVITY[list(PER_OBJECT)] = True


class LidarModel:
    """Beam elevations and azimuth steps of the rig's LiDAR, and the rays of them to cast
    (all, or those of ``window``)."""

    def __init__(self, rig: RigConfig, window: ScanWindow | None = None) -> None:
        up, down = np.radians(rig.lidar_fov_deg)
        #: (beams,) elevation, top beam first
        self.elevation = np.linspace(up, down, rig.lidar_beams)
        steps = rig.lidar_azimuth_steps
        #: (steps,) azimuth in the LiDAR frame (x forward, y left), ascending from -pi
        self.azimuth = -np.pi + (np.arange(steps) + 0.5) * (2 * np.pi / steps)
        self.window = window
        self.max_range = rig.lidar_max_range
        self.cast_range = self.max_range
        #: beams (rows) and azimuth steps (columns) cast, ascending
        self.rows = np.arange(rig.lidar_beams)
        self.cols = np.arange(steps)
        if window is not None:
            self.rows = np.flatnonzero(
                (self.elevation >= window.min_elevation - ANGLE_MARGIN)
                & (self.elevation <= window.max_elevation + ANGLE_MARGIN)
            )
            centres = np.array([window.azimuth_centre, *window.extra_centres])
            off = np.abs(wrap(self.azimuth[:, None] - centres[None, :])).min(axis=1)
            self.cols = np.flatnonzero(off <= window.azimuth_half_width + ANGLE_MARGIN)
            self.cast_range = min(self.max_range, window.max_range + RANGE_MARGIN)
        self.fan = (
            RayFan(self.azimuth[self.cols], np.tan(self.elevation[self.rows])[None, :], wrap=True)
            if len(self.rows) and len(self.cols)
            else None
        )
        self.cos_elevation = np.cos(self.elevation)
        self.sin_elevation = np.sin(self.elevation)
        self.abs_sin_elevation = np.abs(self.sin_elevation)
        self.cos_azimuth = np.cos(self.azimuth)
        self.sin_azimuth = np.sin(self.azimuth)
        self.range_noise = rig.range_noise
        self.dropout = rig.dropout

    @property
    def rays(self) -> int:
        """Rays of the whole scan (each gets its random draws, cast or not)."""
        return len(self.elevation) * len(self.azimuth)


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
    # One draw of each kind per ray of the whole scan, whatever is cast: the same frame
    # gets the same noise on the same ray, windowed or not.
    total = lidar.rays
    u_drop = gen.random(total)
    n_range = gen.standard_normal(total, dtype=np.float32)
    n_intensity = gen.standard_normal(total, dtype=np.float32)
    if lidar.fan is None:
        return LidarRender(points=np.zeros((0, 4), np.float32), material=np.zeros(0, np.uint8))
    hits = cast(prims, lidar.fan, origin, height, yaw, lidar.cast_range)
    row, col = lidar.rows[hits.row], lidar.cols[hits.col]
    ray = col * len(lidar.elevation) + row
    r = hits.dist / lidar.cos_elevation[row]
    mat, _ = surface_materials(prims, roads, hits)
    reflect = REFLECTIVITY[mat]
    own = np.flatnonzero(_OWN_REFLECTIVITY[mat] & (hits.prim >= 0))
    reflect[own] = prims.reflectivity[hits.prim[own]]
    # cosine of the angle of incidence: walls by their normal, flat surfaces by the elevation
    facing = np.abs(hits.nx * hits.cos_t[hits.col] + hits.ny * hits.sin_t[hits.col])
    cos_i = np.where(
        hits.kind == WALL, facing * lidar.cos_elevation[row], lidar.abs_sin_elevation[row]
    )
    glass = (mat == Material.GLASS) | (mat == Material.CAR_GLASS)
    drop = u_drop[ray] < lidar.dropout + GLASS_DROPOUT * glass
    sigma = lidar.range_noise + FOLIAGE_NOISE * (mat == Material.FOLIAGE)
    r = r + n_range[ray] * sigma
    intensity = reflect * (0.35 + 0.65 * cos_i) + 0.015 * n_intensity[ray]
    keep = np.flatnonzero(~drop & (r > 0.0) & (r <= lidar.max_range))
    r, row, col = r[keep], row[keep], col[keep]
    horizontal = r * lidar.cos_elevation[row]
    points = np.empty((len(keep), 4), dtype=np.float32)
    points[:, 0] = horizontal * lidar.cos_azimuth[col]
    points[:, 1] = horizontal * lidar.sin_azimuth[col]
    points[:, 2] = r * lidar.sin_elevation[row]
    points[:, 3] = np.clip(intensity[keep], 0.0, 1.0)
    return LidarRender(points=points, material=mat[keep])
