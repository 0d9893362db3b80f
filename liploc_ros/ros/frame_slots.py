"""Newest-frame slots: a slow consumer drops camera frames instead of falling behind.

Each camera has one slot holding only its newest unprocessed frame; a new frame replaces the
waiting one (counted as dropped). The worker takes from the camera that has waited longest
since it was last served, so with several cameras each one is served in turn and none
starves, whatever their rates. No rclpy here: tested without ROS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LatestFrameSlots", "SlotCounts", "TakenFrame"]

T = TypeVar("T")


@dataclass(frozen=True)
class SlotCounts:
    """Counters of one camera (a snapshot)."""

    #: frames put into the slot
    received: int = 0
    #: frames taken by the consumer
    taken: int = 0
    #: frames replaced by a newer one before the consumer took them
    dropped: int = 0


@dataclass(frozen=True)
class TakenFrame(Generic[T]):
    camera: str
    item: T
    #: when the frame arrived (clock seconds)
    arrival: float
    #: how long the camera had been waiting for service (s): since its oldest unserved frame
    waited: float


class _Slot(Generic[T]):
    __slots__ = ("arrival", "dropped", "item", "received", "taken", "waiting_since")

    def __init__(self) -> None:
        self.item: T | None = None
        self.arrival = 0.0
        self.waiting_since: float | None = None
        self.received = self.taken = self.dropped = 0


class LatestFrameSlots(Generic[T]):
    """One newest-frame slot per camera name; :meth:`put` never blocks."""

    def __init__(
        self, cameras: Sequence[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not cameras:
            raise ValueError("LatestFrameSlots needs at least one camera")
        self._slots: dict[str, _Slot[T]] = {name: _Slot() for name in cameras}
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False

    def put(self, camera: str, item: T) -> bool:
        """Store ``item`` as ``camera``'s newest frame; True when it replaced (dropped) a
        frame the consumer had not taken yet."""
        now = self._clock()
        with self._cond:
            slot = self._slots[camera]
            replaced = slot.item is not None
            if replaced:
                slot.dropped += 1
            else:
                slot.waiting_since = now
            slot.item, slot.arrival = item, now
            slot.received += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> TakenFrame[T] | None:
        """The newest frame of the camera waiting longest; None after ``timeout`` seconds
        without a frame, or once closed."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                waiting = [
                    (s.waiting_since, n)
                    for n, s in self._slots.items()
                    if s.item is not None and s.waiting_since is not None  # (set together)
                ]
                if waiting:
                    since, name = min(waiting)
                    slot = self._slots[name]
                    item, arrival = slot.item, slot.arrival
                    assert item is not None  # a waiting slot holds a frame
                    slot.item, slot.waiting_since = None, None
                    slot.taken += 1
                    return TakenFrame(name, item, arrival, self._clock() - since)
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def close(self) -> None:
        """Wake a waiting :meth:`take` for good (it returns None from now on)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def counts(self) -> dict[str, SlotCounts]:
        with self._cond:
            return {
                name: SlotCounts(s.received, s.taken, s.dropped) for name, s in self._slots.items()
            }
