"""What the localizer node reports on /diagnostics: rate, latency, score, fix ratio, drops.

The worker records each processed frame; the diagnostics timer takes a :class:`StatsWindow`
once a period (figures over the period since the last one, plus running totals) and turns
it into a DiagnosticStatus. A frame whose stamp is far from the node's clock
(:func:`stamp_is_far`) is localized but kept out of the latency figures, and an unexpected
error in the worker is counted (:meth:`LocalizerStats.record_error`). No rclpy here.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["RECENT", "LocalizerStats", "StatsWindow", "stamp_is_far"]

#: frames the running processing-time percentile is taken over
RECENT = 1000


def stamp_is_far(stamp_s: float, now_s: float, max_offset_s: float) -> bool:
    """True when ``stamp_s`` lies more than ``max_offset_s`` from ``now_s`` (0: never).

    A camera whose clock is unset (1970) or wrong (years ahead) would make now - stamp a
    meaningless latency; such frames are still localized but not timed.
    """
    return max_offset_s > 0 and not abs(now_s - stamp_s) <= max_offset_s


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@dataclass(frozen=True)
class StatsWindow:
    """Figures over one diagnostics period, and totals since start."""

    period_s: float
    #: frames localized in the period, and per second
    frames: int
    rate_hz: float
    #: fixes among them, and their fraction (NaN without frames)
    fixes: int
    fix_ratio: float
    #: image stamp -> pose published (ms, the node's clock): median and worst
    latency_p50_ms: float
    latency_max_ms: float
    #: frame taken off its slot -> pose published (ms): decode, localize, publish
    processing_mean_ms: float
    processing_max_ms: float
    #: 99th percentile of the processing time over the last RECENT frames (any period)
    processing_p99_ms: float
    #: best raw score and confidence, averaged over the period
    score_mean: float
    confidence_mean: float
    #: totals since start
    total_frames: int
    total_fixes: int
    total_bad: int
    #: unexpected errors of the worker in the period, and since start
    errors: int = 0
    total_errors: int = 0


class LocalizerStats:
    """Thread-safe counters: the worker records, the diagnostics timer reads."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._latency: list[float] = []
        self._processing: list[float] = []
        self._scores: list[float] = []
        self._confidence: list[float] = []
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._fixes = self._errors = 0
        self.total_frames = self.total_fixes = self.total_bad = self.total_errors = 0

    def record(
        self,
        *,
        ok: bool,
        score: float,
        confidence: float,
        latency_ms: float | None,
        processing_ms: float,
    ) -> None:
        """One localized frame; ``latency_ms`` None: not timed (stamp far from the clock)."""
        with self._lock:
            if latency_ms is not None:
                self._latency.append(latency_ms)
            self._processing.append(processing_ms)
            self._recent.append(processing_ms)
            if math.isfinite(score):
                self._scores.append(score)
            self._confidence.append(confidence)
            self._fixes += int(ok)
            self.total_frames += 1
            self.total_fixes += int(ok)

    def record_bad(self) -> None:
        """One frame that could not be decoded."""
        with self._lock:
            self.total_bad += 1

    def record_error(self) -> None:
        """One frame the worker failed on unexpectedly (a bug: the worker goes on)."""
        with self._lock:
            self._errors += 1
            self.total_errors += 1

    def window(self) -> StatsWindow:
        """The figures since the last call (or the start), then a fresh period."""
        now = self._clock()
        with self._lock:
            period = max(now - self._start, 1e-9)
            frames = len(self._processing)
            out = StatsWindow(
                period_s=period,
                frames=frames,
                rate_hz=frames / period,
                fixes=self._fixes,
                fix_ratio=self._fixes / frames if frames else math.nan,
                latency_p50_ms=_percentile(self._latency, 50),
                latency_max_ms=max(self._latency, default=math.nan),
                processing_mean_ms=_mean(self._processing),
                processing_max_ms=max(self._processing, default=math.nan),
                processing_p99_ms=_percentile(list(self._recent), 99),
                score_mean=_mean(self._scores),
                confidence_mean=_mean(self._confidence),
                total_frames=self.total_frames,
                total_fixes=self.total_fixes,
                total_bad=self.total_bad,
                errors=self._errors,
                total_errors=self.total_errors,
            )
            self._start = now
            self._latency, self._processing = [], []
            self._scores, self._confidence = [], []
            self._fixes = self._errors = 0
        return out
