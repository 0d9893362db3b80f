"""Shared fixtures of the map building tests: a tiny untrained model and in-memory sources."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from liploc_ros.datasets.base import Frame, FrameSource, IndexedSource
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.model import LoadedModel, create_model, model_preset, wrap_model
from liploc_ros.preprocess import CameraConfig, PreprocessConfig

SIZE = 32


def tiny_model(seed: int = 0) -> LoadedModel:
    """An untrained liploc-tiny (ResNet-18) at 32 px: fast, and deterministic per seed."""
    torch.manual_seed(seed)
    pre = PreprocessConfig(camera=CameraConfig(image_size=SIZE), lidar_image_size=SIZE)
    return wrap_model(create_model(model_preset("liploc-tiny"), pre))


@functools.lru_cache(maxsize=4)
def drive_frames(seed: int = 3, frames: int = 10) -> tuple[Frame, ...]:
    """The LiDAR frames (no images) of a short synthetic drive, 1 m apart, rendered once."""
    drive = make_drive(seed, 0, frames)
    return tuple(drive.frame(i, image=False) for i in range(len(drive)))


def with_stop(frames: Sequence[Frame], at: int, repeats: int) -> list[Frame]:
    """The drive with frame ``at`` repeated: a vehicle standing still for a while."""
    out = list(frames[: at + 1]) + [frames[at]] * repeats + list(frames[at + 1 :])
    return [
        Frame(index=i, stamp=0.1 * i, points=f.points, pose=f.pose, meta=f.meta)
        for i, f in enumerate(out)
    ]


class ListSource(FrameSource):
    """A streaming source over frames; optionally raises ``error`` before frame ``fail_at``."""

    def __init__(
        self,
        frames: Sequence[Frame],
        name: str = "list",
        *,
        fail_at: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.frames = list(frames)
        self.name = name
        self.fail_at = fail_at
        self.error = error or KeyboardInterrupt()
        self.served = 0

    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        for i, frame in enumerate(self.frames):
            if self.fail_at is not None and i == self.fail_at:
                raise self.error
            self.served += 1
            yield frame


class ListIndexedSource(IndexedSource):
    """A random-access source over frames whose reads take uneven time, so that a pool
    finishes them out of order; ``fail_at`` raises ``error`` when that frame is read."""

    def __init__(
        self,
        frames: Sequence[Frame],
        name: str = "indexed",
        *,
        jitter: float = 0.0,
        fail_at: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.frames = list(frames)
        self.name = name
        self.jitter = jitter
        self.fail_at = fail_at
        self.error = error or KeyboardInterrupt()
        self.read: list[int] = []
        self._rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def stamps(self) -> np.ndarray:
        return np.array([f.stamp for f in self.frames], dtype=np.float64)

    @property
    def poses(self) -> np.ndarray | None:
        out = np.full((len(self), 4, 4), np.nan)
        for i, f in enumerate(self.frames):
            if f.pose is not None:
                out[i] = f.pose
        return out

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        if self.fail_at is not None and index == self.fail_at:
            raise self.error
        if self.jitter:
            time.sleep(float(self._rng.uniform(0, self.jitter)))
        self.read.append(index)
        return self.frames[index]
