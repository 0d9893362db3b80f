"""Where the sequence filter stands after a frame: its state and the figures behind it
(/diagnostics, markers, ``liploc localize``'s summary)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["FilterStatus", "TrackState"]


class TrackState(str, Enum):
    """Where the filter stands."""

    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"


@dataclass(frozen=True)
class FilterStatus:
    """The filter after its latest frame (diagnostics, markers)."""

    state: TrackState
    #: Kish's effective particle count of the latest weights
    effective_particles: float
    #: posterior probability of the dominant mode
    mode_probability: float
    #: posterior probability that the vehicle is at no mapped place the particles hold
    offmap_probability: float
    #: particles injected at the latest frame
    injected: int
    #: frames seen and frames tracked since the filter was made or reset
    frames: int
    tracked_frames: int

    @property
    def tracked_share(self) -> float:
        return self.tracked_frames / self.frames if self.frames else 0.0
