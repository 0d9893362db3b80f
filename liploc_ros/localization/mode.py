"""The one interface every localizer mode implements: embedded frames in, estimates out.

A mode turns the camera embeddings of a stream of frames (in time order, with their stamps
and, where there is odometry, the odometry pose at each stamp) into one
:class:`~liploc_ros.localization.estimate.PoseEstimate` per frame over one map. The encoder
stays in front of it (:class:`~liploc_ros.localization.localizer.Localizer`), so that the
node, ``liploc localize``, ``liploc eval`` (which embeds drives itself), the demo and the
benchmarks all drive a mode the same way, and none of them asks which mode it holds.

A new mode is one class deriving from :class:`LocalizationMode` and one entry in
:mod:`~liploc_ros.localization.mode_registry`. Every method but :meth:`estimate` has a
default that suits a mode without memory (the single-frame one): nothing to reset, no
initial pose to take, no particles to draw.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.fix_gate import GateRule
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig

if TYPE_CHECKING:
    from liploc_ros.localization.localizer import FrameEstimator

__all__ = ["LocalizationMode", "ModeSettings"]


@dataclass(frozen=True)
class ModeSettings:
    """Every mode's settings: the single-frame section and the sequence filter's (a mode
    reads the sections it needs)."""

    localizer: LocalizerConfig = DEFAULT_CONFIG
    sequence: SequenceConfig = DEFAULT_SEQUENCE_CONFIG

    def __post_init__(self) -> None:
        if not isinstance(self.localizer, LocalizerConfig):
            raise ConfigError(f"localizer settings must be a LocalizerConfig, not "
                              f"{type(self.localizer).__name__}")  # fmt: skip
        if not isinstance(self.sequence, SequenceConfig):
            raise ConfigError(f"sequence settings must be a SequenceConfig, not "
                              f"{type(self.sequence).__name__}")  # fmt: skip


class LocalizationMode(ABC):
    """Embedded frames of one stream -> estimates over one map; see the module docstring."""

    #: the registry's name of the mode
    name: ClassVar[str] = ""
    #: whether the caller should fetch odometry for each frame (it is passed either way)
    uses_odometry: ClassVar[bool] = False

    def __init__(self, estimator: FrameEstimator, settings: ModeSettings) -> None:
        self.estimator = estimator
        self.settings = settings

    @abstractmethod
    def estimate(
        self,
        queries: np.ndarray,
        stamps: Sequence[float] | np.ndarray,
        odometry: Sequence[np.ndarray | None] | None = None,
        *,
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """(N, D) camera embeddings of the stream's next frames, in time order, with their
        stamps and odometry poses (``T_odom_lidar`` at each stamp, None: none) -> one
        estimate per frame. ``k``: entries retrieved at least (Recall@K; the estimate's
        ``indices`` list them); ``timings_ms``: stages the caller timed before, per frame."""

    def reset(self) -> None:  # noqa: B027 (a mode without memory has nothing to forget)
        """Forget the stream (global localization from the next frame on)."""

    def seed(
        self, T_map_base: np.ndarray, covariance: np.ndarray, T_base_lidar: np.ndarray
    ) -> None:
        """Start from an operator's initial pose; a mode without memory cannot."""
        raise ConfigError(f"{self.name} mode takes no initial pose (only a mode that tracks)")

    def request_full_update(self) -> None:  # noqa: B027 (nothing to do without memory)
        """Weigh the next frame fully even without motion (a mode without memory always
        does)."""

    def reconfigure(self, settings: ModeSettings) -> None:
        """New settings from the next frame on (dynamic parameters)."""
        self.estimator.config = settings.localizer
        self.settings = settings

    def gate_rule(self) -> GateRule | None:
        """The fix gate the mode's estimates were decided by, for the evaluation's sweep of
        its target (None: the mode has no gate to sweep)."""
        return None

    def describe(self) -> dict[str, Any]:
        """The settings a run's summary records."""
        return {"mode": self.name, "localizer": to_dict(self.settings.localizer)}

    def status(self) -> dict[str, str]:
        """The mode's state for /diagnostics (``state`` first); {} for none."""
        return {}

    def particles(self) -> np.ndarray | None:
        """(N, 3) x, y, yaw of the hypotheses the mode holds, for RViz; None for none."""
        return None

    def with_timings(self, estimate: PoseEstimate, timings: dict[str, float]) -> PoseEstimate:
        """``estimate`` with ``timings`` and their total."""
        timings = dict(timings)
        timings["total"] = sum(v for key, v in timings.items() if key != "total")
        return dataclasses.replace(estimate, timings_ms=timings)
