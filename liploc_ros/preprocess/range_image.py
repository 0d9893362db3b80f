"""LiDAR scan -> 8-bit range image, exactly as the LIP-Loc authors' code computes it.

The projection is done in float32 with the same sequence of operations as the authors' code
(derived from the SemanticKITTI range projection), so that pixel assignments at cell borders
agree with the images their checkpoints were trained on. Two things make it fast without
changing any pixel:

- nearest-point-wins is a scatter-min (``np.minimum.at``) instead of a sort by depth;
- with the crop on, a cheap conservative pre-filter (a wedge in x/y and a cone in z) drops
  the points that cannot land in the kept window before any trigonometry is done; the exact
  test is then applied to the survivors with the unchanged formulas.
"""

from __future__ import annotations

import math

import numpy as np

from liploc_ros.errors import EmptyCloudError, PreprocessError
from liploc_ros.preprocess.config import RangeImageConfig

#: the authors' empty pixel: uint8(-1 * 5.1) wraps to 251 on x86-64
AUTHORS_EMPTY_VALUE = 251
#: margin (radians) that keeps the pre-filter conservative against float32 rounding
_PREFILTER_MARGIN = 1e-3


def valid_xyz(points: np.ndarray, heading_deg: float = 0.0) -> np.ndarray:
    """Finite x, y, z of an N x 3 / N x 4 cloud as a 4 x N float32 array (rows x, y, z and a
    spare row), expressed in the LiDAR frame turned by ``heading_deg`` about z (see
    :func:`turn_xy`)."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4):
        raise PreprocessError(f"point cloud must be N x 3 or N x 4, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise PreprocessError(f"point cloud must hold floats, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise EmptyCloudError("point cloud is empty")
    # Rows x, y, z plus a spare row for the depth, so that one gather moves all four later.
    buf = np.empty((4, arr.shape[0]), dtype=np.float32)
    buf[:3] = arr[:, :3].T
    if heading_deg:
        turn_xy(buf, heading_deg)
    # One cheap reduction proves the common case (all finite); only then pay for a row mask.
    if not np.isfinite(buf[:3].sum()):
        keep = np.isfinite(buf[:3]).all(axis=0)
        if not keep.any():
            raise EmptyCloudError(f"point cloud has no finite point ({arr.shape[0]} NaN/inf)")
        buf = buf[:, keep]
    return buf


def turn_xy(buf: np.ndarray, heading_deg: float) -> None:
    """Re-express rows x, y of ``buf`` (in place) in the frame turned by ``heading_deg`` about
    z (counter-clockwise, as ROS yaw): a point straight ahead of a camera looking that way
    ends up on the new x axis, at the centre of the forward crop.

    Quarter turns swap and negate coordinates exactly (no rounding), so a crop centred at
    180 degrees is bit for bit the forward crop of the cloud turned by 180 degrees.
    """
    quarter, rest = divmod(float(heading_deg) % 360.0, 90.0)
    x, y = buf[0].copy(), buf[1].copy()
    if rest == 0.0:
        turns = {0: (x, y), 1: (y, -x), 2: (-x, -y), 3: (-y, x)}
        buf[0], buf[1] = turns[int(quarter)]
        return
    h = math.radians(heading_deg)
    c, s = math.cos(h), math.sin(h)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    buf[0] = c * x64 + s * y64
    buf[1] = c * y64 - s * x64


def project_range(
    points: np.ndarray, cfg: RangeImageConfig, *, window: bool = True, heading_deg: float = 0.0
) -> np.ndarray:
    """Float32 range image (metres, empty = -1); the crop window only, unless ``window=False``.

    ``heading_deg`` is the crop centre: the azimuth (degrees, counter-clockwise from the
    LiDAR's x axis) the kept window faces. 0, the authors' forward crop, takes the exact path
    of their code.
    """
    buf = valid_xyz(points, heading_deg)
    if window:
        (r0, r1), (c0, c1) = cfg.crop_rows, cfg.crop_cols
    else:
        (r0, r1), (c0, c1) = (0, cfg.height), (0, cfg.width)
    x, y, z, depth = buf
    # The authors' norm sums x^2 + y^2 + z^2 left to right in float32; so does this.
    np.multiply(x, x, out=depth)
    depth += y * y
    depth += z * z
    np.sqrt(depth, out=depth)

    keep = depth > 0
    keep &= depth < np.float32(cfg.max_range)
    if cfg.distance_threshold is not None:
        keep &= depth < np.float32(cfg.distance_threshold)
    if (r0, r1) != (0, cfg.height) or (c0, c1) != (0, cfg.width):
        keep &= _window_prefilter(x, y, z, depth, cfg, (r0, r1), (c0, c1))
    x, y, z, depth = np.take(buf, np.flatnonzero(keep), axis=1)

    rows, cols = r1 - r0, c1 - c0
    out = np.full(rows * cols, np.inf, dtype=np.float32)
    if depth.size:
        u, v = _pixel_coords(x, y, z, depth, cfg)
        inside = (v >= r0) & (v < r1) & (u >= c0) & (u < c1)
        sel = np.flatnonzero(inside)
        flat = (v[sel] - r0) * cols + (u[sel] - c0)
        # Nearest point wins: the authors write points far-to-near; a scatter-min is the same.
        np.minimum.at(out, flat, depth[sel])
    out[np.isinf(out)] = -1.0
    return out.reshape(rows, cols)


def range_image(
    points: np.ndarray, cfg: RangeImageConfig, *, heading_deg: float = 0.0
) -> np.ndarray:
    """The LiDAR encoder's picture: H x W x 3 uint8 (cropped as configured, the crop centred
    at ``heading_deg``).

    A cloud whose points all fall outside the window yields an all-empty image rather than an
    error, as a scan facing open space legitimately does; only a cloud with no usable point
    at all (empty, all NaN) raises :class:`EmptyCloudError`.
    """
    gray = range_to_uint8(project_range(points, cfg, heading_deg=heading_deg), cfg)
    return np.repeat(gray[:, :, None], 3, axis=2)


def range_to_uint8(ranges: np.ndarray, cfg: RangeImageConfig) -> np.ndarray:
    """Metres -> 8 bit with the authors' scale (255 / max_range: 5.1 for 50 m), truncating."""
    scale = np.float32(255.0 / cfg.max_range)
    empty = ranges < 0
    gray = (np.where(empty, np.float32(0), ranges) * scale).astype(np.uint8)
    gray[empty] = AUTHORS_EMPTY_VALUE if cfg.empty_mode == "authors" else 0
    return gray


def _pixel_coords(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, depth: np.ndarray, cfg: RangeImageConfig
) -> tuple[np.ndarray, np.ndarray]:
    # float32 throughout, in the authors' order of operations (see module docstring).
    fov_up = cfg.fov_up_deg / 180.0 * math.pi
    fov_down = cfg.fov_down_deg / 180.0 * math.pi
    fov = abs(fov_down) + abs(fov_up)
    yaw = -np.arctan2(y, x)
    # |z| / depth can exceed 1 by one ulp in float32; clipping only removes NaNs.
    pitch = np.arcsin(np.clip(z / depth, -1.0, 1.0))
    u = 0.5 * (yaw / math.pi + 1.0)
    v = 1.0 - (pitch + abs(fov_down)) / fov
    u = np.floor(u * cfg.width)
    v = np.floor(v * cfg.height)
    u = np.clip(u, 0, cfg.width - 1).astype(np.int64)
    v = np.clip(v, 0, cfg.height - 1).astype(np.int64)
    return u, v


def _window_prefilter(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    depth: np.ndarray,
    cfg: RangeImageConfig,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> np.ndarray:
    """Conservative mask of the points that may land in the window (a superset, never less)."""
    keep = np.ones(x.shape, dtype=bool)
    fov_up = math.radians(cfg.fov_up_deg)
    fov_down = math.radians(cfg.fov_down_deg)
    fov = abs(fov_down) + abs(fov_up)
    r0, r1 = rows
    # Row r1 starts where pitch drops below this; pitches above fov_up clamp into row 0.
    if r1 < cfg.height:
        min_pitch = (1.0 - r1 / cfg.height) * fov - abs(fov_down) - _PREFILTER_MARGIN
        keep &= z > depth * np.float32(math.sin(min_pitch))
    if r0 > 0:
        max_pitch = (1.0 - r0 / cfg.height) * fov - abs(fov_down) + _PREFILTER_MARGIN
        keep &= z < depth * np.float32(math.sin(max_pitch))
    c0, c1 = cols
    # Column u covers yaw in [(2u/W - 1) pi, ...); yaw = -atan2(y, x).
    yaw_lo = (2.0 * c0 / cfg.width - 1.0) * math.pi - _PREFILTER_MARGIN
    yaw_hi = (2.0 * c1 / cfg.width - 1.0) * math.pi + _PREFILTER_MARGIN
    half = max(abs(yaw_lo), abs(yaw_hi))
    if half < math.pi / 2 - _PREFILTER_MARGIN:
        # A forward wedge |atan2(y, x)| <= half: x > 0 and |y| <= x tan(half).
        keep &= (x > 0) & (np.abs(y) <= x * np.float32(math.tan(half)))
    return keep
