"""Dataset specs of training and evaluation configs -> frame sources.

The sources are opened by :func:`liploc_ros.datasets.registry.open_source`; this module
adds the options that let synthetic towns skip rendering the LiDAR rays the range image
never shows (:func:`scan_options`), and :class:`StridedSource`, every n-th frame of a
source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from liploc_ros.datasets.base import Frame, FrameSource, IndexedSource
from liploc_ros.datasets.registry import expand_spec, parse_spec
from liploc_ros.datasets.synthetic.lidar import ScanWindow
from liploc_ros.errors import DatasetError
from liploc_ros.preprocess.config import PreprocessConfig, RangeImageConfig


def scan_options(
    spec: str, pre: PreprocessConfig, headings: Sequence[float] = (0.0,)
) -> dict[str, Any]:
    """The options of :func:`~liploc_ros.datasets.registry.open_source` for a source whose
    pictures follow ``pre``: a synthetic source then casts only the LiDAR rays that can land
    in ``pre``'s range image cropped at ``headings`` (degrees; a sixth of the rays with the
    authors' forward crop alone): the pictures are the same, and rendering is twice as fast.
    Its scans then hold only those points. Other kinds take no option."""
    if parse_spec(expand_spec(spec.strip()))[0] == "synthetic":
        return {"lidar_window": scan_window(pre.lidar, headings)}
    return {}


def scan_window(cfg: RangeImageConfig, headings: Sequence[float] = (0.0,)) -> ScanWindow:
    """The directions and ranges whose returns can land in ``cfg``'s (cropped) range image,
    from its projection: column ``floor((1 - azimuth / pi) / 2 * width)``, row
    ``floor((1 - (pitch + |fov_down|) / fov) * height)``, both clipped to the image; with
    several ``headings`` (crop centres, degrees counter-clockwise), the union of the crops
    turned by each (:func:`liploc_ros.preprocess.range_image.project_range`)."""
    if not headings:
        raise DatasetError("a scan window needs at least one crop heading")
    (r0, r1), (c0, c1) = cfg.crop_rows, cfg.crop_cols
    up, down = math.radians(cfg.fov_up_deg), math.radians(cfg.fov_down_deg)
    fov = abs(up) + abs(down)
    # rows clip into the image, so the first and last rows take everything beyond them
    top = (1 - r0 / cfg.height) * fov - abs(down) if r0 > 0 else math.pi / 2
    bottom = (1 - r1 / cfg.height) * fov - abs(down) if r1 < cfg.height else -math.pi / 2
    max_range = cfg.max_range
    if cfg.distance_threshold is not None:
        max_range = min(max_range, cfg.distance_threshold)
    centre = (1 - (c0 + c1) / cfg.width) * math.pi
    centres = [centre + math.radians(h) for h in headings]
    return ScanWindow(
        azimuth_centre=centres[0],
        azimuth_half_width=(c1 - c0) / cfg.width * math.pi,
        min_elevation=bottom,
        max_elevation=top,
        max_range=max_range,
        extra_centres=tuple(centres[1:]),
    )


def source_file_poses(source: FrameSource) -> np.ndarray | None:
    """The poses as the source's pose file holds them, where the authors' evaluation reads
    its distances from (KITTI: camera 0 in the first camera frame; KITTI-360: poses.txt
    rows); None for sources without such a file."""
    for name in ("file_poses", "camera_poses", "imu_poses"):
        poses = getattr(source, name, None)
        if poses is not None:
            return np.asarray(poses, dtype=np.float64)
    return None


class StridedSource(IndexedSource):
    """Every ``step``-th frame of an indexed source, renumbered from 0 (fewer, more distinct
    frames: neighbouring frames of a 10 Hz drive are nearly the same picture)."""

    def __init__(self, source: IndexedSource, step: int) -> None:
        if step < 1:
            raise DatasetError(f"frame step must be >= 1, got {step}")
        self.source, self.step = source, step
        self.name = f"{source.name}/every{step}"
        self.calibration = source.calibration
        self._index = np.arange(0, len(source), step)
        file_poses = source_file_poses(source)
        self.file_poses = None if file_poses is None else file_poses[self._index]

    def __len__(self) -> int:
        return len(self._index)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        original = self.source.frame(int(self._index[index]), image=image, points=points)
        return Frame(
            index=index,
            stamp=original.stamp,
            image=original.image,
            points=original.points,
            pose=original.pose,
            meta={**original.meta, "source_index": original.index},
        )

    @property
    def stamps(self) -> np.ndarray:
        return np.asarray(self.source.stamps)[self._index]

    @property
    def poses(self) -> np.ndarray | None:
        poses = self.source.poses
        return None if poses is None else np.asarray(poses)[self._index]
