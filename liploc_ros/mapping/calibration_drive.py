"""A drive's camera frames, embedded, as a calibration's labelled drive: what ``liploc
build-map`` (the map's own drive), ``liploc calibrate`` (a drive of another day) and
``liploc eval`` measure a map's score calibration on
(:mod:`liploc_ros.localization.calibration`).

Frames are kept in time order, at least :data:`MIN_STEP_M` apart (a vehicle standing still
adds the same frame again), up to ``max_frames``: a long drive is thinned to every n-th
frame, so that the calibration covers all of it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import numpy as np

from liploc_ros.datasets.base import Frame, FrameSource, IndexedSource
from liploc_ros.errors import MapError
from liploc_ros.localization.calibration import LabelledDrive, ScoreCalibration, calibrate
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model.inference import Embedder

__all__ = ["MIN_STEP_M", "calibrate_from_source", "calibrate_map", "labelled_drive"]

log = logging.getLogger(__name__)

#: frames closer than this (m) to the previous kept one are skipped
MIN_STEP_M = 0.5
#: images embedded together
_BATCH = 32


def _posed_frames(source: FrameSource, max_frames: int) -> Iterator[Frame]:
    """The source's frames with an image and a finite pose, thinned (see the docstring)."""
    stride = 1
    if isinstance(source, IndexedSource) and len(source) > max_frames > 0:
        stride = math.ceil(len(source) / max_frames)
    last: np.ndarray | None = None
    for position, frame in enumerate(source.iter_frames(image=True, points=False)):
        if position % stride:
            continue
        if frame.image is None or frame.pose is None or not np.isfinite(frame.pose).all():
            continue
        xy = np.asarray(frame.pose, np.float64)[:2, 3]
        if last is not None and float(np.hypot(*(xy - last))) < MIN_STEP_M:
            continue
        last = xy
        yield frame


def labelled_drive(
    source: FrameSource,
    embedder: Embedder,
    *,
    max_frames: int = 600,
    progress: Callable[[int], None] | None = None,
) -> LabelledDrive | None:
    """``source``'s posed camera frames embedded by ``embedder``'s camera encoder (None when
    it has none: no camera, or no poses). ``progress`` is called with the frames done."""
    images: list[np.ndarray] = []
    poses: list[np.ndarray] = []
    odometry: list[np.ndarray | None] = []
    chunks: list[np.ndarray] = []
    for frame in _posed_frames(source, max_frames):
        assert frame.image is not None  # _posed_frames keeps frames with an image only
        images.append(frame.image)
        poses.append(np.asarray(frame.pose, np.float64))
        odometry.append(frame.odometry)
        if len(images) - _BATCH * len(chunks) == _BATCH:
            chunks.append(embedder.embed_images(images[-_BATCH:]))
            if progress is not None:
                progress(len(images))
        if len(images) >= max_frames:
            break
    if not images:
        return None
    done = _BATCH * len(chunks)
    if done < len(images):
        chunks.append(embedder.embed_images(images[done:]))
        if progress is not None:
            progress(len(images))
    has_odometry = all(o is not None for o in odometry)
    return LabelledDrive(
        queries=np.concatenate(chunks).astype(np.float32),
        truth=np.stack(poses),
        odometry=np.stack([np.asarray(o, np.float64) for o in odometry]) if has_odometry else None,
        name=source.name,
    )


def calibrate_from_source(
    database: MapDatabase,
    source: FrameSource,
    embedder: Embedder,
    *,
    same_drive: bool,
    max_frames: int = 600,
    config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
    progress: Callable[[int], None] | None = None,
) -> ScoreCalibration | None:
    """The calibration of ``database`` measured on ``source``'s camera frames (None when the
    source has none with poses; the reason is logged); not stored: the caller decides."""
    drive = labelled_drive(source, embedder, max_frames=max_frames, progress=progress)
    if drive is None:
        log.info("%s has no camera frames with poses: nothing to calibrate on", source.name)
        return None
    return calibrate(
        database, [drive], model_fingerprint=embedder.fingerprint, same_drive=same_drive,
        config=config,
    )  # fmt: skip


#: what a map without calibration means, for the messages of the tools that build one
UNCALIBRATED = (
    "the localizers will use conservative settings (few, late fixes) until `liploc calibrate "
    "--map MAP --model MODEL --queries SOURCE` measures one on a labelled drive"
)


def calibrate_map(
    database: MapDatabase,
    source: FrameSource,
    embedder: Embedder,
    *,
    same_drive: bool,
    max_frames: int = 600,
    progress: Callable[[int], None] | None = None,
) -> tuple[ScoreCalibration | None, str]:
    """Measure ``database``'s calibration on ``source`` and store it in the map: (the
    calibration, "") or (None, why there is none). A map builder keeps its map either way:
    a drive too short or without camera frames is a warning, not a lost map."""
    try:
        calibration = calibrate_from_source(
            database, source, embedder, same_drive=same_drive, max_frames=max_frames,
            progress=progress,
        )  # fmt: skip
    except MapError as err:
        return None, f"no calibration: {err}; {UNCALIBRATED}"
    if calibration is None:
        why = f"{source.name} has no camera frames with poses"
        return None, f"no calibration: {why}; {UNCALIBRATED}"
    database.set_calibration(calibration.to_dict())
    return calibration, ""
