"""Dataset specs of training and evaluation configs -> frame sources.

A thin layer over :func:`liploc_ros.datasets.registry.open_source` (``kitti:ROOT:SEQ``,
``kitti360:ROOT:DRIVE``, ``bag:PATH``, ``synthetic:SEED:TRAVERSAL:FRAMES``) that first
replaces ``${VAR}`` from the environment, so that shipped configs can say
``kitti:${KITTI_ROOT}:08``; and that lets synthetic towns skip rendering the LiDAR rays the
range image never shows.
"""

from __future__ import annotations

import math

from liploc_ros.datasets.base import FrameSource
from liploc_ros.datasets.registry import open_source as _registry_open
from liploc_ros.datasets.registry import parse_spec
from liploc_ros.datasets.synthetic.lidar import ScanWindow
from liploc_ros.preprocess.config import PreprocessConfig, RangeImageConfig
from liploc_ros.training.config import expand_spec


def open_source(spec: str, pre: PreprocessConfig | None = None) -> FrameSource:
    """The frame source a spec names (``${VAR}`` expanded from the environment).

    With ``pre``, a synthetic source casts only the LiDAR rays that can land in ``pre``'s
    range image (a sixth of them with the authors' crop): the pictures are the same, and
    rendering is twice as fast. Its scans then hold only those points.
    """
    spec = expand_spec(spec.strip())
    if pre is not None and parse_spec(spec)[0] == "synthetic":
        return _registry_open(spec, lidar_window=scan_window(pre.lidar))
    return _registry_open(spec)


def scan_window(cfg: RangeImageConfig) -> ScanWindow:
    """The directions and ranges whose returns can land in ``cfg``'s (cropped) range image,
    from its projection: column ``floor((1 - azimuth / pi) / 2 * width)``, row
    ``floor((1 - (pitch + |fov_down|) / fov) * height)``, both clipped to the image."""
    (r0, r1), (c0, c1) = cfg.crop_rows, cfg.crop_cols
    up, down = math.radians(cfg.fov_up_deg), math.radians(cfg.fov_down_deg)
    fov = abs(up) + abs(down)
    # rows clip into the image, so the first and last rows take everything beyond them
    top = (1 - r0 / cfg.height) * fov - abs(down) if r0 > 0 else math.pi / 2
    bottom = (1 - r1 / cfg.height) * fov - abs(down) if r1 < cfg.height else -math.pi / 2
    max_range = cfg.max_range
    if cfg.distance_threshold is not None:
        max_range = min(max_range, cfg.distance_threshold)
    return ScanWindow(
        azimuth_centre=(1 - (c0 + c1) / cfg.width) * math.pi,
        azimuth_half_width=(c1 - c0) / cfg.width * math.pi,
        min_elevation=bottom,
        max_elevation=top,
        max_range=max_range,
    )
