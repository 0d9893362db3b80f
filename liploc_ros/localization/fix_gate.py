"""When the sequence filter publishes a fix: one pure function, so that the filter and the
evaluation's sweep of the gate (the precision / fix-ratio curve) decide alike.

- A track is *taken up* (the first fix, or the first after a loss) when the dominant mode
  holds at least ``target_precision`` of the posterior and is tight
  (``max_position_std_m``); it is *kept* while the mode holds at least
  ``keep_probability`` (hysteresis: a tracked place's posterior dips on a few poor frames
  without the vehicle having moved anywhere else).
- A frame whose evidence at the tracked place is below the map's floor, or after which the
  evidence of the last few frame steps there is below its window's floor
  (:mod:`~liploc_ros.localization.evidence_trail`), gets no fix (a track already taken up
  is kept): the first frames after a kidnap score like elsewhere.
  Such a frame never takes a track up: a place the frame contradicts is not confirmed by
  it, however much prior mass it holds (an operator's wrong initial pose).

The filter's particles never depend on these decisions, so replaying them over a run's
estimates with another target gives exactly the run that target would have given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.sequence_config import SequenceConfig

__all__ = ["GateInputs", "GateRule", "replay_fixes"]


@dataclass(frozen=True)
class GateInputs:
    """What the gate reads of one frame's posterior."""

    #: posterior probability of the dominant mode
    probability: float
    #: its position spread (m)
    spread_m: float
    #: this frame's untempered evidence at it
    frame_evidence: float
    #: the evidence summed over the last few frame steps at the same hypothesis, one per
    #: window (:mod:`~liploc_ros.localization.evidence_trail`; NaN or absent: not tested)
    window_evidence: tuple[float, ...] = ()


@dataclass(frozen=True)
class GateRule:
    """The gate's thresholds: targets, a physical bound and the map's calibration."""

    target_precision: float
    max_position_std_m: float
    frame_floor: float
    #: a track already taken up is kept while the mode holds at least this (<= target)
    keep_probability: float
    #: the calibrated floors of ``window_evidence`` (empty: none)
    window_floors: tuple[float, ...] = ()

    @classmethod
    def of(cls, config: SequenceConfig, evidence: EvidenceModel) -> GateRule:
        """The rule of a filter's ``config`` (targets, bounds) on a map's ``evidence``."""
        return cls(config.target_precision, config.max_position_std_m, evidence.frame_floor,
                   config.keep_probability, evidence.window_floors)  # fmt: skip

    def mismatch(self, frame: GateInputs) -> bool:
        """Whether the frame, or the last few frame steps, score below their floors."""
        if frame.frame_evidence < self.frame_floor:
            return True
        pairs = zip(frame.window_evidence, self.window_floors, strict=False)
        return any(value < floor for value, floor in pairs)  # NaN: not tested

    @property
    def keep(self) -> float:
        """The posterior at which a track already taken up is kept (at most the target)."""
        return min(self.keep_probability, self.target_precision)

    def decide(self, tracking: bool, frame: GateInputs) -> tuple[bool, bool, str]:
        """(tracking after this frame, fix published, why not: "" / "lost" / "uncertain"
        / "mismatch") from whether the filter was tracking before it."""
        sure = frame.probability >= (self.keep if tracking else self.target_precision)
        tight = frame.spread_m <= self.max_position_std_m
        held = sure and tight
        if not held:
            return False, False, "uncertain" if sure and not tight else "lost"
        if self.mismatch(frame):
            return tracking, False, "mismatch"
        return True, True, ""


def replay_fixes(estimates: Sequence[PoseEstimate], rule: GateRule) -> np.ndarray:
    """(N,) bool: which frames of a sequence run would get a fix under ``rule`` (their
    estimates' confidence, spread and frame evidence replayed in order)."""
    tracking = False
    out = np.zeros(len(estimates), bool)
    for i, e in enumerate(estimates):
        inputs = GateInputs(e.confidence, e.spread_m, e.frame_evidence, e.window_evidence)
        tracking, out[i], _ = rule.decide(tracking, inputs)
    return out
