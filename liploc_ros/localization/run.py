"""The localization loop: a source's camera frames through a localizer, in time order.

What ``liploc localize`` runs (the node runs the same :class:`Localizer` one frame at a
time): the frames of any :class:`~liploc_ros.datasets.base.FrameSource` (every
``stride``-th, at most ``max_frames``), encoded ``batch_size`` at a time and handed to the
localizer's mode with the odometry the source recorded, each estimate kept with the frame's
ground truth. The figures are :mod:`liploc_ros.evaluation`'s; printing is the CLI's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from liploc_ros.datasets.base import Frame, FrameSource, IndexedSource
from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.localizer import Localizer

__all__ = ["FrameRecord", "StreamRun", "localize_source", "source_frames"]


@dataclass(frozen=True)
class FrameRecord:
    """One localized frame of a source, with its ground truth where the source has one."""

    #: the frame's index in its source
    index: int
    estimate: PoseEstimate
    #: 4 x 4 ``T_map_lidar`` ground truth, or None
    truth: np.ndarray | None = None

    @property
    def stamp(self) -> float:
        return self.estimate.stamp


@dataclass
class StreamRun:
    """What a run over a source gives: every frame's record, the frames re-run one at a
    time for the true per-frame latency, the odometry kinds seen, and the wall time."""

    records: list[FrameRecord] = field(default_factory=list)
    single: list[PoseEstimate] = field(default_factory=list)
    odometry_kinds: set[str] = field(default_factory=set)
    seconds: float = 0.0


def source_frames(
    source: FrameSource, stride: int = 1, limit: int | None = None
) -> Iterator[Frame]:
    """Every ``stride``-th frame with its image; a random-access source reads only those."""
    if stride < 1 or (limit is not None and limit < 1):
        raise ConfigError(f"stride and the frame limit must be at least 1, got {stride}, {limit}")
    if isinstance(source, IndexedSource):
        frames: Iterator[Frame] = (
            source.frame(i, image=True, points=False) for i in range(0, len(source), stride)
        )
    else:
        frames = (
            f
            for position, f in enumerate(source.iter_frames(image=True, points=False))
            if position % stride == 0
        )
    for count, frame in enumerate(frames, start=1):
        if frame.image is None:
            raise DatasetError(f"{source.name}: frame {frame.index} has no camera image")
        yield frame
        if limit is not None and count >= limit:
            return


def _truth(pose: np.ndarray | None) -> np.ndarray | None:
    if pose is None:
        return None
    pose = np.asarray(pose, np.float64)
    return pose if np.isfinite(pose).all() else None


def localize_source(
    localizer: Localizer,
    source: FrameSource,
    *,
    batch_size: int = 16,
    stride: int = 1,
    max_frames: int | None = None,
    k: int | None = None,
    latency_samples: int = 0,
    on_frame: Callable[[StreamRun], None] | None = None,
) -> StreamRun:
    """Localize ``source``'s frames with ``localizer`` (warmed up by the caller).

    ``k``: entries retrieved at least per frame (Recall@K); ``latency_samples``: that many
    frames are localized again one at a time afterwards, as the node runs them, on a fresh
    stream (the mode is reset before and after); ``on_frame``: called after each frame is
    read (a progress bar). A source with no camera frame is a :class:`DatasetError`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    run = StreamRun()
    pending: list[Frame] = []
    samples: list[tuple[np.ndarray, float]] = []
    uses_odometry = localizer.mode.uses_odometry

    def flush() -> None:
        odometry = [f.odometry for f in pending]
        if uses_odometry:
            run.odometry_kinds.update(
                str(f.meta.get("odometry", "recorded")) if f.odometry is not None else "none"
                for f in pending
            )
        images = [f.image for f in pending if f.image is not None]  # all: source_frames
        stamps = [f.stamp for f in pending]
        estimates = localizer.localize_batch(images, stamps, odometry, k=k)
        for frame, est in zip(pending, estimates, strict=True):
            run.records.append(FrameRecord(frame.index, est, _truth(frame.pose)))
        pending.clear()

    t0 = time.perf_counter()
    for frame in source_frames(source, stride, max_frames):
        pending.append(frame)
        if len(samples) < latency_samples and frame.image is not None:
            samples.append((frame.image, frame.stamp))
        if len(pending) == batch_size:
            flush()
        if on_frame is not None:
            on_frame(run)
    if pending:
        flush()
    run.seconds = time.perf_counter() - t0
    if not run.records:
        raise DatasetError(f"{source.name}: no frame with a camera image to localize")
    localizer.mode.reset()
    run.single = [localizer.localize(image, stamp) for image, stamp in samples]
    localizer.mode.reset()
    return run
