"""Keyframe selection by distance, so that a standing vehicle does not bloat the map.

A scan is kept when its position is at least ``min_distance`` metres (Euclidean, 3D) from the
last kept scan's position; the first scan is always kept and ``min_distance`` 0 keeps every
scan. The rule looks at the last *kept* position, not the previous scan's, so that slow
creeping still yields an entry every ``min_distance`` metres instead of never.
"""

from __future__ import annotations

import math

import numpy as np

from liploc_ros.errors import ConfigError


def _check_distance(min_distance: float) -> float:
    value = float(min_distance)
    if not (math.isfinite(value) and value >= 0.0):
        raise ConfigError(f"keyframe distance must be a finite number >= 0, got {min_distance!r}")
    return value


def _position(position: np.ndarray) -> np.ndarray:
    pos = np.asarray(position, dtype=np.float64).reshape(-1)
    if pos.shape != (3,):
        raise ConfigError(f"a keyframe position must have 3 coordinates, got shape {pos.shape}")
    return pos


class KeyframeSelector:
    """Incremental keyframe test (the live node feeds it one scan at a time).

    It also sums the distance between consecutive positions it is shown, which is the route
    length of the drive (every posed scan counts, kept or not).
    """

    def __init__(
        self,
        min_distance: float,
        *,
        last_kept: np.ndarray | None = None,
        last_position: np.ndarray | None = None,
        route_length: float = 0.0,
    ) -> None:
        self.min_distance = _check_distance(min_distance)
        #: position of the last kept scan (None before the first)
        self.last_kept = None if last_kept is None else _position(last_kept).copy()
        #: position of the last scan shown (kept or not)
        self.last_position = None if last_position is None else _position(last_position).copy()
        #: metres between consecutive positions shown so far
        self.route_length = float(route_length)
        #: scans shown / kept so far
        self.seen = 0
        self.kept = 0

    def would_accept(self, position: np.ndarray) -> bool:
        """The keyframe decision for ``position`` without recording anything."""
        pos = _position(position)
        if self.last_kept is None or self.min_distance == 0.0:
            return True
        return bool(np.linalg.norm(pos - self.last_kept) >= self.min_distance)

    def accept(self, position: np.ndarray) -> bool:
        """Record a scan at ``position``; True when it is a keyframe (to be kept)."""
        pos = _position(position)
        if not np.isfinite(pos).all():
            raise ConfigError(f"keyframe position must be finite, got {pos.tolist()}")
        keep = self.would_accept(pos)
        if self.last_position is not None:
            self.route_length += float(np.linalg.norm(pos - self.last_position))
        self.last_position = pos.copy()
        self.seen += 1
        if keep:
            self.last_kept = pos.copy()
            self.kept += 1
        return keep


def select_keyframes(positions: np.ndarray, min_distance: float) -> np.ndarray:
    """Indices (int64, increasing) of the keyframes among ``positions`` (N x 3, or N x 4 x 4
    poses); rows with a non-finite position (frames without a pose) are never kept."""
    arr = np.asarray(positions, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[1:] == (4, 4):
        arr = arr[:, :3, 3]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ConfigError(f"positions must be N x 3 (or N x 4 x 4 poses), got shape {arr.shape}")
    selector = KeyframeSelector(min_distance)
    finite: np.ndarray = np.all(np.isfinite(arr), axis=1)
    kept = [i for i in range(arr.shape[0]) if finite[i] and selector.accept(arr[i])]
    return np.asarray(kept, dtype=np.int64)
