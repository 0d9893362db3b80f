"""Frames -> the 8-bit square pictures the encoders see, per drive.

Training works on the resized uint8 pictures (camera RGB, LiDAR range gray) rather than on
the final float tensors, for three reasons: the coarse-dropout augmentation is defined on
them (after the resize, filled with 8-bit 0), they are 4x (camera) to 12x (LiDAR) smaller
than float32 tensors, and they come from the serving recipe itself
(:func:`liploc_ros.preprocess.camera_picture` / :func:`lidar_picture`, normalised later by
:func:`liploc_ros.preprocess.picture_input`), so a model trained here sees the inputs the
Embedder will feed it.

A :class:`PictureSet` is a drive's pairs with their poses, its LiDAR pictures at one or
more crop headings (0: the authors' forward crop; others for cross-traversal pairs, whose
camera looks another way than the scan's forward); :class:`LazyPictures` renders them on
demand from an indexed source, :class:`~liploc_ros.training.picture_cache.CachedPictures`
reads them from a cache folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liploc_ros.datasets.base import Frame, IndexedSource
from liploc_ros.errors import DatasetError
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.pictures import camera_picture, lidar_picture
from liploc_ros.training.sources import source_file_poses

#: the crop headings of a set that holds the forward crop only
FORWARD = (0.0,)


def heading_slot(headings: Sequence[float], heading: float, where: str) -> int:
    """Where ``heading`` (degrees) is among a set's LiDAR crop headings."""
    for slot, have in enumerate(headings):
        if float(have) == float(heading):
            return slot
    raise DatasetError(
        f"{where}: no LiDAR pictures cropped at {heading} degrees (has {list(headings)})"
    )


def frame_pictures(
    frame: Frame, pre: PreprocessConfig, where: str, headings: Sequence[float] = FORWARD
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's camera picture (S x S x 3) and its LiDAR pictures at each crop heading
    (len(headings) x S x S); a frame missing a modality is an error naming ``where``."""
    if frame.image is None or frame.points is None:
        missing = "image" if frame.image is None else "scan"
        raise DatasetError(f"{where}: frame {frame.index} has no {missing}; training needs both")
    lidar = np.stack([lidar_picture(frame.points, pre, heading_deg=h) for h in headings])
    return camera_picture(frame.image, pre), lidar


class PictureSet:
    """A drive's (camera, LiDAR) picture pairs with ``T_map_lidar`` poses (NaN: unknown)."""

    name: str
    #: (N, 4, 4) T_map_lidar, NaN where a frame has no pose; None: no poses at all
    poses: np.ndarray | None
    #: (N, 4, 4) the pose file's own poses (see :func:`source_file_poses`) or None
    file_poses: np.ndarray | None
    #: crop headings (degrees, counter-clockwise from the LiDAR's x axis) of the LiDAR
    #: pictures held per frame; 0 is among them
    headings: tuple[float, ...] = FORWARD

    def __len__(self) -> int:
        raise NotImplementedError

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(S x S x 3 camera, S x S LiDAR at heading 0) uint8 pictures of frame ``index``."""
        raise NotImplementedError

    def camera(self, index: int) -> np.ndarray:
        return self.pair(index)[0]

    def lidar(self, index: int, heading: float = 0.0) -> np.ndarray:
        """The S x S LiDAR picture of frame ``index`` cropped at ``heading`` (one of
        :attr:`headings`)."""
        heading_slot(self.headings, heading, self.name)
        if float(heading) != 0.0:
            raise NotImplementedError(f"{type(self).__name__} holds the forward crop only")
        return self.pair(index)[1]


class LazyPictures(PictureSet):
    """Pictures made on demand from an indexed source (picklable for DataLoader workers
    when the source is)."""

    def __init__(
        self, source: IndexedSource, pre: PreprocessConfig, headings: Sequence[float] = FORWARD
    ) -> None:
        if not isinstance(source, IndexedSource):
            raise DatasetError(
                f"{source.name}: a streaming source (bag) must be cached before training"
            )
        self.source = source
        self.pre = pre
        self.name = source.name
        self.headings = tuple(float(h) for h in headings)
        heading_slot(self.headings, 0.0, self.name)
        poses = source.poses
        self.poses = None if poses is None else np.asarray(poses, dtype=np.float64)
        self.file_poses = source_file_poses(source)

    def __len__(self) -> int:
        return len(self.source)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        cam, lid = frame_pictures(self.source.frame(index), self.pre, self.name, FORWARD)
        return cam, lid[0]

    def all_headings(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The camera picture and the LiDAR pictures at every heading (what a cache holds)."""
        return frame_pictures(self.source.frame(index), self.pre, self.name, self.headings)

    def camera(self, index: int) -> np.ndarray:
        frame = self.source.frame(index, points=False)
        if frame.image is None:
            raise DatasetError(f"{self.name}: frame {index} has no image")
        return camera_picture(frame.image, self.pre)

    def lidar(self, index: int, heading: float = 0.0) -> np.ndarray:
        heading_slot(self.headings, heading, self.name)
        frame = self.source.frame(index, image=False)
        if frame.points is None:
            raise DatasetError(f"{self.name}: frame {index} has no scan")
        return lidar_picture(frame.points, self.pre, heading_deg=heading)
