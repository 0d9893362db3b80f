"""Live map building off the executor: scans queue up, a worker thread embeds and saves.

The ROS callbacks only convert messages and call :meth:`LiveMapBuilder.submit`, which never
blocks; one worker thread owns the :class:`~liploc_ros.mapping.MapBuilder` and does
everything slow (pose lookup, preprocessing, batch embedding, saving). An embedding batch
that takes seconds on a CPU therefore delays no subscription, timer or service callback, and
the builder is only ever touched by one thread (no lock around the model).

A scan waits in the queue until its pose is available (the pose stream often lags the
LiDAR), at most ``pose_timeout`` seconds, then is dropped and counted; scans are handed to
the builder in arrival order, so keyframe decisions are the same as in an offline build of
the same data. Saving (:meth:`save`, :meth:`close`) goes through the worker too: it adds
every queued scan whose pose is known, embeds what is pending, and writes the map
atomically. An unexpected error (a bug, a pose source failing in a way it should not) is
logged without going through anything that can raise, counted (``LiveStats.errors``) and
the worker goes on; :attr:`LiveMapBuilder.alive` lets the node exit (non-zero) should the
worker thread end anyway. No rclpy here: the class is tested without ROS.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from liploc_ros.errors import LiplocError
from liploc_ros.ros.pose_sources import NoPoseError, PoseLookup
from liploc_ros.ros.safe_log import safe_log

__all__ = ["LiveMapBuilder", "LiveStats", "SaveResult"]

log = logging.getLogger(__name__)


class ScanSink(Protocol):
    """What the worker needs of :class:`liploc_ros.mapping.MapBuilder`."""

    def add_scan(
        self, points: np.ndarray, pose: np.ndarray, stamp: float, *, frame_index: int = -1
    ) -> bool: ...

    def __len__(self) -> int: ...

    def save(self, path: str | Path) -> Path: ...


@dataclass(frozen=True)
class LiveStats:
    """Counters of a live build (a snapshot)."""

    #: scans submitted (decoded, non-empty)
    received: int = 0
    #: scans handed to the builder with a pose (kept or not by the keyframe test)
    posed: int = 0
    #: map entries so far (one per kept scan and crop heading, ``build.headings``)
    entries: int = 0
    #: scans waiting in the queue (for their pose or for the worker)
    pending: int = 0
    #: scans dropped: no pose within pose_timeout, or a stamp that can never have one
    dropped_no_pose: int = 0
    #: scans dropped because the queue was full (the worker fell behind)
    dropped_overflow: int = 0
    #: scans the builder refused (e.g. no point in the range image's field of view)
    dropped_invalid: int = 0
    #: unexpected errors of the worker (each logged with its traceback; the worker goes on)
    errors: int = 0


@dataclass(frozen=True)
class SaveResult:
    path: Path
    entries: int
    stats: LiveStats


@dataclass
class _Scan:
    points: np.ndarray
    stamp: float
    frame_id: str
    arrival: float
    index: int


class LiveMapBuilder:
    """Feeds a map builder from a live stream of scans; see the module docstring.

    ``warn`` receives human-readable warnings (the node passes its logger's); repeated ones
    of the same kind are rate-limited to one per ``warn_period`` seconds, with a count of the
    ones left out. ``max_pending`` bounds the queue (the oldest scan is dropped when full).
    """

    def __init__(
        self,
        builder: ScanSink,
        poses: PoseLookup,
        *,
        pose_timeout: float = 1.0,
        max_pending: int = 100,
        warn: Callable[[str], None] | None = None,
        warn_period: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.builder = builder
        self.poses = poses
        self.pose_timeout = float(pose_timeout)
        self.max_pending = int(max_pending)
        self._warn_fn = warn or log.warning
        self._warn_period = float(warn_period)
        self._clock = clock
        self._queue: deque[_Scan] = deque()
        self._saves: list[tuple[Path, Future]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._stats = LiveStats()
        self._last_warning: dict[str, tuple[float, int]] = {}
        self._thread = threading.Thread(target=self._run, name="liploc-map-worker", daemon=True)
        self._thread.start()

    # -- called from ROS callbacks (any thread) ------------------------------------------

    def submit(self, points: np.ndarray, stamp: float, frame_id: str) -> None:
        """Queue a scan (N x 4 float32 in its own frame) stamped ``stamp``; never blocks."""
        with self._cond:
            if self._stop:
                return
            if len(self._queue) >= self.max_pending:
                old = self._queue.popleft()
                self._bump(dropped_overflow=1)
                self.warn(
                    "overflow",
                    f"scan queue full ({self.max_pending} scans): dropped the scan stamped "
                    f"{old.stamp:.3f} s (embedding cannot keep up, or poses stopped coming)",
                )
            self._queue.append(_Scan(points, stamp, frame_id, self._clock(), self._stats.received))
            self._bump(received=1)
            self._cond.notify()

    def poses_changed(self) -> None:
        """Wake the worker: new pose data may resolve waiting scans."""
        with self._cond:
            self._cond.notify()

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (it ends only in :meth:`close`)."""
        return self._thread.is_alive()

    def stats(self) -> LiveStats:
        with self._cond:
            return replace(self._stats, pending=len(self._queue))

    def save(self, path: str | Path) -> Future:
        """Ask the worker to save to ``path``; the future gives a :class:`SaveResult` (or the
        error)."""
        future: Future = Future()
        with self._cond:
            if self._stop:
                future.set_exception(LiplocError("the map builder is closed"))
                return future
            self._saves.append((Path(path), future))
            self._cond.notify()
        return future

    def close(
        self, save_to: str | Path | None = None, *, timeout: float | None = None
    ) -> SaveResult | None:
        """Finish: add every queued scan whose pose is known (the rest are dropped), save to
        ``save_to`` if given, stop the worker. Errors of the final save are raised here."""
        future = self.save(save_to) if save_to is not None else None
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise LiplocError(f"the map worker did not finish within {timeout} s")
        if future is not None and save_to is not None and not future.done():
            # the worker had ended before (it should not): the builder is ours alone now,
            # so the map gathered so far is still saved
            try:
                self._drain(final=True)
            except Exception:
                self._internal_error("adding the last scans")
            self._save(Path(save_to), future)
        return future.result(0) if future is not None else None

    def warn(self, kind: str, message: str) -> None:
        """Warn, at most once per ``warn_period`` seconds for each ``kind``."""
        now = self._clock()
        last, suppressed = self._last_warning.get(kind, (-np.inf, 0))
        if now - last < self._warn_period:
            self._last_warning[kind] = (last, suppressed + 1)
            return
        self._last_warning[kind] = (now, 0)
        more = f" ({suppressed} more like it not shown)" if suppressed else ""
        safe_log(self._warn_fn, message + more)

    def _internal_error(self, what: str) -> None:
        """Count and log (with the traceback) an unexpected error; never raises."""
        try:
            self._bump(errors=1)
            safe_log(
                self._warn_fn, f"map worker failed {what}, it goes on:\n{traceback.format_exc()}"
            )
        except Exception:  # the report itself failed: the worker must live on
            pass

    # -- the worker ----------------------------------------------------------------------

    def _bump(self, **counts: int) -> None:
        with self._cond:  # re-entrant: callers may hold it already
            self._stats = replace(
                self._stats, **{k: getattr(self._stats, k) + v for k, v in counts.items()}
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                if not (self._stop or self._saves):
                    # poll while scans wait for a pose (to time them out), else sleep
                    self._cond.wait(0.05 if self._queue else None)
                stopping = self._stop
                saves, self._saves = self._saves, []
            try:
                self._drain(final=stopping)
            except Exception:  # anything _drain does not handle itself: count, log, go on
                self._internal_error("adding scans")
            for path, future in saves:
                self._save(path, future)
            if stopping:
                return

    def _drain(self, *, final: bool) -> None:
        """Hand queued scans to the builder, in order, while their poses are known."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                scan = self._queue[0]
            try:
                pose = self.poses.lookup(scan.frame_id, scan.stamp)
            except NoPoseError as err:
                pose, reason = None, str(err)
            except Exception as err:  # a pose source bug: drop this scan, not the worker
                self._internal_error(f"looking up the pose of the scan stamped {scan.stamp:.3f} s")
                pose, reason = None, f"the pose lookup failed ({type(err).__name__})"
            else:
                reason = f"no pose within pose_timeout ({self.pose_timeout} s)"
                if pose is None and not final and self._clock() - scan.arrival < self.pose_timeout:
                    return  # wait for it: later scans must not overtake
            with self._cond:
                self._queue.popleft()
            if pose is None:
                self._bump(dropped_no_pose=1)
                self.warn("no_pose", f"scan stamped {scan.stamp:.3f} s dropped: {reason}")
                continue
            self._add(scan, pose)

    def _add(self, scan: _Scan, pose: np.ndarray) -> None:
        try:
            self.builder.add_scan(scan.points, pose, scan.stamp, frame_index=scan.index)
        except LiplocError as err:
            self._bump(dropped_invalid=1)
            self.warn("invalid", f"scan stamped {scan.stamp:.3f} s skipped: {err}")
            return
        except Exception:  # a bug must not kill the worker silently: say it, keep going
            self._bump(dropped_invalid=1)
            self._internal_error(f"on the scan stamped {scan.stamp:.3f} s")
            return
        with self._cond:
            self._bump(posed=1)
            self._stats = replace(self._stats, entries=len(self.builder))

    def _save(self, path: Path, future: Future) -> None:
        try:
            written = self.builder.save(path)
        except Exception as err:  # handed to the caller, who reports it
            future.set_exception(err)
            return
        with self._cond:
            self._stats = replace(self._stats, entries=len(self.builder))
        future.set_result(SaveResult(Path(written), len(self.builder), self.stats()))
