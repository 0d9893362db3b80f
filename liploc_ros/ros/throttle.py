"""Warnings rate-limited per cause, with counts, so that a broken camera cannot flood a log.

A stream of bad frames at 30 Hz would otherwise write 30 warnings a second; here each cause
("unsupported encoding", "corrupt compressed image", ...) is logged at most once per period,
and each line says how many like it were left out since the last one and how many there
were in all. The line goes out through :func:`~liploc_ros.ros.safe_log.safe_log`, so a
failing logger never raises into the caller (a worker thread reporting its own error). Give
each throttle a log function of one severity (:func:`~liploc_ros.ros.safe_log.severity_log`):
rclpy refuses a second severity from one call site. No rclpy here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from liploc_ros.ros.safe_log import safe_log

__all__ = ["WarningThrottle"]


class WarningThrottle:
    """``warn(cause, message)`` logs through ``log`` at most once per ``period`` per cause."""

    def __init__(
        self,
        log: Callable[[str], None],
        period: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._period = float(period)
        self._clock = clock
        self._lock = threading.Lock()
        #: cause -> (time of the last line, left out since, total)
        self._state: dict[str, tuple[float, int, int]] = {}

    @property
    def period(self) -> float:
        """Seconds between two lines of one cause (settable: a dynamic parameter)."""
        return self._period

    @period.setter
    def period(self, value: float) -> None:
        self._period = float(value)

    def warn(self, cause: str, message: str) -> bool:
        """Count one occurrence of ``cause``; log ``message`` unless throttled (True if
        logged)."""
        now = self._clock()
        with self._lock:
            last, left_out, total = self._state.get(cause, (float("-inf"), 0, 0))
            total += 1
            if now - last < self._period:
                self._state[cause] = (last, left_out + 1, total)
                return False
            self._state[cause] = (now, 0, total)
        more = f", {left_out} more since the last warning" if left_out else ""
        safe_log(self._log, f"{message} [{cause}: {total} in all{more}]")
        return True

    def counts(self) -> dict[str, int]:
        """cause -> occurrences so far (logged or not)."""
        with self._lock:
            return {cause: total for cause, (_, _, total) in self._state.items()}
