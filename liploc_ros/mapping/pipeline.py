"""Build a map from a whole drive, with reading and preprocessing hidden behind encoding.

Three stages run at once: a producer thread walks the source (reading files or decoding a
bag, choosing keyframes from the poses), a small thread pool turns kept scans into range
images, and the calling thread feeds batches to the model. NumPy, OpenCV, file reads and
torch all release the GIL, so the stages overlap on separate cores. Queues are bounded
(about two batches), so memory stays flat however long the drive.

Entries come out in source order: the producer queues one future per kept scan in order
and the encoder takes them in that order, whatever order the pool finishes them in.

An interrupted build (Ctrl-C, an error) writes nothing where the map goes: the map is saved
by the caller only after :func:`build_map` returns. With a ``checkpoint``, what was embedded
is kept there and a later call with ``resume=True`` continues from it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from liploc_ros.config import to_dict
from liploc_ros.datasets.base import FrameSource, IndexedSource
from liploc_ros.errors import DatasetError, EmptyCloudError, PreprocessError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping.build_checkpoint import BuildCheckpoint, BuildProgress, Restored
from liploc_ros.mapping.builder import MapBuilder, check_points, check_pose, keyframe_inputs
from liploc_ros.mapping.config import DEFAULT_CONFIG, MapBuildConfig
from liploc_ros.mapping.headings import format_headings
from liploc_ros.mapping.keyframes import KeyframeSelector
from liploc_ros.model.inference import Embedder

log = logging.getLogger(__name__)

#: how long the producer waits on a full queue before checking for a stop request
_POLL_S = 0.1
#: how long an interrupted build waits for the producer thread to notice
_JOIN_S = 5.0


@dataclass(frozen=True)
class BuildSummary:
    """What a build did; counts cover the whole map, resumed part included."""

    #: frames of the source examined
    scans_read: int
    #: frames skipped because they have no pose (a map entry needs one)
    scans_skipped_no_pose: int
    #: map entries
    entries: int
    #: distance travelled over the posed frames (m)
    route_length_m: float
    #: wall time of this run (s)
    seconds: float
    #: frames examined per second in this run
    scans_per_second: float
    #: frames skipped as closer than the keyframe distance to the last kept one
    scans_skipped_keyframe: int = 0
    #: frames skipped because their scan is empty
    scans_skipped_empty: int = 0
    #: entries taken over from a checkpoint
    resumed_entries: int = 0
    source: str = ""
    #: keyframes kept (each is one entry per heading); -1: not counted
    keyframes: int = -1
    #: the crop headings (degrees) of every keyframe's entries
    headings: tuple[float, ...] = (0.0,)

    def lines(self) -> list[str]:
        """The summary as lines for a terminal."""
        resumed = self.resumed_entries
        per = (
            f" ({self.keyframes} keyframes x {len(self.headings)} crop headings: "
            f"{format_headings(self.headings)} deg)"
            if len(self.headings) > 1 and self.keyframes >= 0
            else ""
        )
        return [
            f"source          {self.source}",
            f"entries         {self.entries}{per}"
            + (f" ({resumed} resumed from a checkpoint)" if resumed else ""),
            f"scans read      {self.scans_read} (skipped: {self.scans_skipped_keyframe} closer "
            f"than the keyframe distance, {self.scans_skipped_no_pose} without pose, "
            f"{self.scans_skipped_empty} empty)",
            f"route length    {self.route_length_m:.1f} m",
            f"time            {self.seconds:.1f} s ({self.scans_per_second:.1f} scans/s)",
        ]


@dataclass(frozen=True)
class _Job:
    """One kept scan on its way to the encoder."""

    future: Any  # Future[np.ndarray] or _Done: the preprocessed inputs, one per heading
    pose: np.ndarray
    stamp: float
    frame_index: int
    progress: BuildProgress


@dataclass(frozen=True)
class _End:
    progress: BuildProgress


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Done:
    """A finished "future" for the single-threaded mode (workers=0)."""

    def __init__(self, fn: Callable[..., np.ndarray], *args: Any) -> None:
        self._value: np.ndarray | None = None
        self._error: BaseException | None = None
        try:
            self._value = fn(*args)
        except Exception as err:  # re-raised by result(), like a Future
            self._error = err

    def result(self) -> np.ndarray:
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


Submit = Callable[..., Any]
#: points -> H x 3 x S x S inputs of one keyframe (:func:`keyframe_inputs`, bound)
Prepare = Callable[[np.ndarray], np.ndarray]


def _snapshot(
    selector: KeyframeSelector, examined: int, no_pose: int, not_keyframe: int, empty: int
) -> BuildProgress:
    def as_tuple(pos: np.ndarray | None) -> tuple[float, float, float] | None:
        return None if pos is None else (float(pos[0]), float(pos[1]), float(pos[2]))

    return BuildProgress(
        examined=examined,
        no_pose=no_pose,
        not_keyframe=not_keyframe,
        empty=empty,
        route_length=selector.route_length,
        last_position=as_tuple(selector.last_position),
        last_kept=as_tuple(selector.last_kept),
    )


def _counters(progress: BuildProgress) -> tuple[int, int, int, int]:
    return progress.examined, progress.no_pose, progress.not_keyframe, progress.empty


def _read_and_prepare(source: IndexedSource, index: int, prepare: Prepare) -> np.ndarray:
    frame = source.frame(index, image=False, points=True)
    try:
        points = check_points(frame.points)
    except EmptyCloudError:
        raise
    except PreprocessError as err:
        raise DatasetError(f"{source.name}: frame {index}: {err}") from err
    return prepare(points)


def _indexed_jobs(
    source: IndexedSource,
    selector: KeyframeSelector,
    start: BuildProgress,
    prepare: Prepare,
    submit: Submit,
) -> Iterator[_Job | _End]:
    """Keyframes chosen from the source's pose table; only kept frames are read at all, and
    reading happens in the pool (parallel file I/O)."""
    examined, no_pose, not_kf, empty = _counters(start)
    poses = source.poses
    stamps = source.stamps
    for i in range(start.examined, len(source)):
        examined += 1
        pose = None if poses is None else check_pose(poses[i])
        if pose is None:
            no_pose += 1
            continue
        if not selector.accept(pose[:3, 3]):
            not_kf += 1
            continue
        future = submit(_read_and_prepare, source, i, prepare)
        progress = _snapshot(selector, examined, no_pose, not_kf, empty)
        yield _Job(future, pose, float(stamps[i]), i, progress)
    yield _End(_snapshot(selector, examined, no_pose, not_kf, empty))


def _stream_jobs(
    source: FrameSource,
    selector: KeyframeSelector,
    start: BuildProgress,
    prepare: Prepare,
    submit: Submit,
) -> Iterator[_Job | _End]:
    """Frames read in order (this thread does the I/O and decoding), kept scans
    preprocessed in the pool."""
    examined, no_pose, not_kf, empty = _counters(start)
    for position, frame in enumerate(source.iter_frames(image=False, points=True)):
        if position < start.examined:
            continue  # done before the checkpoint
        examined += 1
        pose = check_pose(frame.pose)
        if pose is None:
            no_pose += 1
            continue
        try:
            points = check_points(frame.points)
        except EmptyCloudError:
            empty += 1
            continue
        except PreprocessError as err:
            raise DatasetError(f"{source.name}: frame {frame.index}: {err}") from err
        if not selector.accept(pose[:3, 3]):
            not_kf += 1
            continue
        future = submit(prepare, points)
        progress = _snapshot(selector, examined, no_pose, not_kf, empty)
        yield _Job(future, pose, frame.stamp, frame.index, progress)
    yield _End(_snapshot(selector, examined, no_pose, not_kf, empty))


class _Producer:
    """Runs a job generator in a daemon thread, into a bounded queue."""

    def __init__(self, jobs: Iterator[_Job | _End], maxsize: int) -> None:
        self.queue: queue.Queue[_Job | _End | _Failure] = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self._jobs = jobs
        self.thread = threading.Thread(target=self._run, name="liploc-map-reader", daemon=True)
        self.thread.start()

    def _put(self, item: _Job | _End | _Failure) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._jobs:
                if not self._put(item):
                    return
        except BaseException as err:  # forwarded to the consumer, which re-raises it
            self._put(_Failure(err))

    def __iter__(self) -> Iterator[_Job | _End]:
        while True:
            item = self.queue.get()
            if isinstance(item, _Failure):
                raise item.error
            yield item
            if isinstance(item, _End):
                return

    def close(self) -> None:
        self.stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=_JOIN_S)
        if self.thread.is_alive():
            log.warning("the source reader thread did not stop within %.0f s", _JOIN_S)


def checkpoint_match(
    source: FrameSource, embedder: Embedder, config: MapBuildConfig
) -> dict[str, Any]:
    """What a resumed build must share with the one that wrote the checkpoint."""
    loaded = embedder.loaded
    return {
        "source": source.name,
        "model_fingerprint": loaded.fingerprint,
        "precision": embedder.precision,
        "backend": embedder.backend,
        "lidar": to_dict(loaded.preprocess.lidar),
        "lidar_image_size": loaded.preprocess.lidar_image_size,
        "keyframe_distance": config.keyframe_distance,
        "dtype": config.dtype,
        "frame_id": config.frame_id,
        "headings": list(config.headings),
    }


def _restore(builder: MapBuilder, restored: Restored | None) -> BuildProgress:
    """Load a checkpoint's entries and keyframe state into ``builder``; the resume point."""
    if restored is None:
        return BuildProgress()
    progress = restored.progress
    builder.add_embedded(**restored.arrays, state=progress)

    def point(value: tuple[float, float, float] | None) -> np.ndarray | None:
        return None if value is None else np.asarray(value, dtype=np.float64)

    builder.keyframes = KeyframeSelector(
        builder.config.keyframe_distance,
        last_kept=point(progress.last_kept),
        last_position=point(progress.last_position),
        route_length=progress.route_length,
    )
    return progress


def _run(
    source: FrameSource,
    builder: MapBuilder,
    start: BuildProgress,
    saver: BuildCheckpoint | None,
    progress: bool,
) -> BuildProgress:
    """Drive the three stages until the source is exhausted; the final bookkeeping."""
    config = builder.config
    pool = ThreadPoolExecutor(config.workers, "liploc-map-prep") if config.workers > 0 else None
    prepare = functools.partial(keyframe_inputs, cfg=builder.preprocess, headings=builder.headings)
    submit = pool.submit if pool else _Done
    if isinstance(source, IndexedSource):
        jobs = _indexed_jobs(source, builder.keyframes, start, prepare, submit)
    else:
        jobs = _stream_jobs(source, builder.keyframes, start, prepare, submit)
    producer = _Producer(jobs, maxsize=2 * config.batch_size) if pool is not None else None
    bar = tqdm(
        total=len(source) if isinstance(source, IndexedSource) else None,
        initial=start.examined, unit=" scans", desc="building map", disable=not progress,
        dynamic_ncols=True,
    )  # fmt: skip
    late_empty = 0  # kept scans found empty only when preprocessed
    final = start
    finished = False
    try:
        for item in producer if producer is not None else jobs:
            if isinstance(item, _End):
                final = item.progress
                break
            try:
                lidar = item.future.result()
            except EmptyCloudError as err:
                late_empty += 1
                log.warning("%s: frame %d skipped: %s", source.name, item.frame_index, err)
                continue
            state = dataclasses.replace(item.progress, empty=item.progress.empty + late_empty)
            builder.add_input(lidar, item.pose, item.stamp, frame_index=item.frame_index,
                              state=state)  # fmt: skip
            bar.update(state.examined - bar.n)
            bar.set_postfix(entries=len(builder), refresh=False)
            if saver is not None:
                saver.maybe_save(builder)
        builder.flush()
        bar.update(final.examined - bar.n)
        finished = True
    except KeyboardInterrupt:
        if saver is not None and saver.save(builder):
            log.warning(
                "interrupted: %d embedded entries kept in %s (resume to continue)",
                builder.embedded_count, saver.path,
            )  # fmt: skip
        raise
    finally:
        if producer is not None:
            producer.close()
        if pool is not None:
            # queued work is dropped; running tasks (one scan each) are waited for, so no
            # thread outlives the build
            pool.shutdown(wait=True, cancel_futures=not finished)
        bar.close()
    return dataclasses.replace(final, empty=final.empty + late_empty)


def build_map(
    source: FrameSource,
    embedder: Embedder,
    config: MapBuildConfig = DEFAULT_CONFIG,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_interval: float = 60.0,
    resume: bool = False,
) -> tuple[MapDatabase, BuildSummary]:
    """Embed the keyframe scans of ``source`` into a map database (not saved).

    ``checkpoint``: a file where embedded entries are kept every ``checkpoint_interval``
    seconds and on Ctrl-C; ``resume`` continues from it when it exists. The caller removes
    it once the map is saved (see
    :func:`liploc_ros.mapping.build_checkpoint.checkpoint_path_for`).
    """
    t0 = time.perf_counter()
    builder = MapBuilder(embedder, config, source=source.name)
    saver = None
    restored = None
    if checkpoint is not None:
        match = checkpoint_match(source, embedder, config)
        saver = BuildCheckpoint(checkpoint, match, checkpoint_interval)
        restored = saver.load() if resume else None
    start = _restore(builder, restored)
    if restored is not None:
        log.info("resuming from %s: %d entries, %d frames done", checkpoint, restored.entries,
                 start.examined)  # fmt: skip
    final = _run(source, builder, start, saver, progress)
    if len(builder) == 0:
        raise DatasetError(
            f"{source.name}: no map entry: {final.examined} frames read, {final.no_pose} "
            f"without a pose, {final.empty} with an empty scan"
        )
    database = builder.to_database()
    seconds = time.perf_counter() - t0
    summary = BuildSummary(
        scans_read=final.examined,
        scans_skipped_no_pose=final.no_pose,
        entries=len(builder),
        route_length_m=final.route_length,
        seconds=seconds,
        scans_per_second=(final.examined - start.examined) / seconds if seconds > 0 else 0.0,
        scans_skipped_keyframe=final.not_keyframe,
        scans_skipped_empty=final.empty,
        resumed_entries=0 if restored is None else restored.entries,
        source=source.name,
        keyframes=builder.keyframe_count,
        headings=builder.headings,
    )
    return database, summary
