"""The straightforward range projection, kept as the yardstick for the fast one.

It follows the authors' recipe literally: project every point onto the full image, sort by
depth far to near, assign (so the nearest write wins), convert, then crop. The tests check
that :func:`liploc_ros.preprocess.range_image` matches it pixel for pixel, and
``bench/bench_preprocess.py`` measures the speed-up over it.
"""

from __future__ import annotations

import numpy as np

from liploc_ros.preprocess.config import RangeImageConfig
from liploc_ros.preprocess.range_image import AUTHORS_EMPTY_VALUE


def naive_range_image(points: np.ndarray, cfg: RangeImageConfig) -> np.ndarray:
    """H x W x 3 uint8, like :func:`liploc_ros.preprocess.range_image`, the slow way."""
    xyz = np.asarray(points)[:, :3].astype(np.float32)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    depth = np.linalg.norm(xyz, 2, axis=1)
    keep = (depth > 0) & (depth < cfg.max_range)
    if cfg.distance_threshold is not None:
        keep &= depth < cfg.distance_threshold
    xyz, depth = xyz[keep], depth[keep]
    fov_up = cfg.fov_up_deg / 180.0 * np.pi
    fov_down = cfg.fov_down_deg / 180.0 * np.pi
    fov = abs(fov_down) + abs(fov_up)
    yaw = -np.arctan2(xyz[:, 1], xyz[:, 0])
    pitch = np.arcsin(xyz[:, 2] / depth)
    u = np.floor(0.5 * (yaw / np.pi + 1.0) * cfg.width)
    v = np.floor((1.0 - (pitch + abs(fov_down)) / fov) * cfg.height)
    u = np.maximum(0, np.minimum(cfg.width - 1, u)).astype(np.int32)
    v = np.maximum(0, np.minimum(cfg.height - 1, v)).astype(np.int32)
    order = np.argsort(depth)[::-1]
    img = np.full((cfg.height, cfg.width), -1, dtype=np.float32)
    img[v[order], u[order]] = depth[order]
    empty = img < 0
    gray = (np.where(empty, 0, img) * np.float32(255.0 / cfg.max_range)).astype(np.uint8)
    gray[empty] = AUTHORS_EMPTY_VALUE if cfg.empty_mode == "authors" else 0
    (r0, r1), (c0, c1) = cfg.crop_rows, cfg.crop_cols
    return np.repeat(gray[r0:r1, c0:c1, None], 3, axis=2)
