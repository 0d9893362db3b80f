"""The one interface every data source (KITTI, KITTI-360, bags, synthetic) implements.

Conventions, shared by every reader and writer:

- ``Frame.image``: H x W x 3 uint8, **RGB**, C-contiguous.
- ``Frame.points``: N x 4 float32 (x, y, z, intensity) in the LiDAR frame (x forward, y left,
  z up, REP-103), NaN-free once it leaves a reader.
- ``Frame.pose``: 4 x 4 float64 homogeneous transform ``T_map_lidar`` (the LiDAR frame
  expressed in the map frame, z up), or ``None`` where the source has no pose for that frame.
- ``Frame.stamp``: seconds (float) since the source's epoch (times.txt, bag stamps, ...).
- ``Frame.odometry``: 4 x 4 float64 ``T_odom_lidar`` (the LiDAR frame in the odometry frame:
  drifting, only its motion between frames counts), or ``None`` without odometry. Recorded
  where the source has it (bags), simulated with a documented error model elsewhere
  (:mod:`liploc_ros.datasets.odometry`; ``Frame.meta["odometry"]`` says which).

A source is at least iterable (streaming, e.g. a bag). Sources that allow random access also
subclass :class:`IndexedSource`, which the training and evaluation code relies on.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """The camera / LiDAR rig of a drive."""

    #: 3 x 3 pinhole intrinsics of the (rectified) camera whose images the source yields
    camera_matrix: np.ndarray
    #: (width, height) in pixels of those images
    image_size: tuple[int, int]
    #: 4 x 4 float64 pose of the camera optical frame (x right, y down, z forward) in the
    #: LiDAR frame, i.e. ``T_lidar_camera``; KITTI's calib ``Tr`` is its inverse
    T_lidar_camera: np.ndarray


@dataclass(frozen=True)
class Frame:
    """One synchronised camera image + LiDAR scan + pose sample of a drive."""

    index: int
    stamp: float
    image: np.ndarray | None = None
    points: np.ndarray | None = None
    pose: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    odometry: np.ndarray | None = None


class FrameSource(abc.ABC):
    """A drive's frames, in time order."""

    #: a short human-readable name ("kitti/00", "bag:/path/run1", "synthetic/town3/t0")
    name: str = ""
    #: the rig, where the source knows it
    calibration: Calibration | None = None

    @abc.abstractmethod
    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        """Yield frames in order; ``image``/``points`` False skips loading that modality."""

    def __iter__(self) -> Iterator[Frame]:
        return self.iter_frames()


class IndexedSource(FrameSource):
    """A source with a known length, random access and cheap access to stamps and poses."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        """Load frame ``index`` (0-based); skip the modalities that are not asked for."""

    @property
    @abc.abstractmethod
    def stamps(self) -> np.ndarray:
        """(N,) float64 seconds, without loading images or scans."""

    @property
    @abc.abstractmethod
    def poses(self) -> np.ndarray | None:
        """(N, 4, 4) float64 ``T_map_lidar``, NaN-filled rows where a frame has no pose;
        ``None`` when the source has no poses at all."""

    @property
    def odometry(self) -> np.ndarray | None:
        """(N, 4, 4) float64 ``T_odom_lidar`` per frame, or ``None`` without odometry."""
        return None

    def __getitem__(self, index: int) -> Frame:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: frame {index} out of range (0..{len(self) - 1})")
        return self.frame(index % len(self))

    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.frame(i, image=image, points=points)
