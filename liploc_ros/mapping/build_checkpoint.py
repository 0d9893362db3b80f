"""Resumable builds: the entries embedded so far, saved beside the map being built.

A long build (a whole KITTI sequence on a CPU) that is interrupted keeps what it has
embedded in ``<map>.resume.npz`` (NumPy arrays, no pickle, written atomically); a later
build of the same source with the same model and settings continues from it. The map
itself is only ever written once, complete, at the end.

The checkpoint records the pipeline's state right after its last embedded entry (frames
consumed, counters, keyframe selector), so the resumed build makes exactly the keyframe
decisions the uninterrupted one would have made.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.io_utils import atomic_open

log = logging.getLogger(__name__)

FORMAT_NAME = "liploc_ros.build_checkpoint"
#: 2: entries carry their crop heading and keyframe id
FORMAT_VERSION = 2
_ARRAYS = ("embeddings", "poses", "stamps", "frame_index", "heading_deg", "keyframes")


def checkpoint_path_for(map_path: str | Path) -> Path:
    """Where the build of ``map_path`` keeps its checkpoint."""
    path = Path(map_path)
    return path.with_name(path.name + ".resume.npz")


@dataclass(frozen=True)
class BuildProgress:
    """The pipeline's bookkeeping after one frame of the source."""

    #: frames of the source consumed (the resume point)
    examined: int = 0
    no_pose: int = 0
    not_keyframe: int = 0
    empty: int = 0
    route_length: float = 0.0
    last_position: tuple[float, float, float] | None = None
    last_kept: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildProgress:
        data = dict(data)
        for key in ("last_position", "last_kept"):
            if data.get(key) is not None:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)


@dataclass(frozen=True)
class Restored:
    """What a checkpoint gives back."""

    arrays: dict[str, np.ndarray]
    progress: BuildProgress

    @property
    def entries(self) -> int:
        return int(self.arrays["stamps"].shape[0])


class BuildCheckpoint:
    """Saves the builder's embedded entries at most every ``interval`` seconds.

    ``match`` holds what must be equal for a checkpoint to be resumed (model, source,
    keyframe distance, preprocessing, ...); a checkpoint made differently is refused.
    """

    def __init__(self, path: str | Path, match: dict[str, Any], interval: float = 60.0) -> None:
        self.path = Path(path)
        self.match = json.loads(json.dumps(match))  # plain JSON types, compared as loaded
        self.interval = float(interval)
        self._saved_entries = -1
        self._saved_at = time.monotonic()

    def load(self) -> Restored | None:
        """The checkpoint's entries and progress; None when there is no checkpoint."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
                    meta = {}  # refused below, by version, before looking for its arrays
                arrays = {name: np.array(data[name]) for name in _ARRAYS} if meta else {}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise MapError(
                f"build checkpoint {self.path} is unreadable ({err}); delete it to start over"
            ) from err
        if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
            raise MapError(
                f"{self.path} is not a version {FORMAT_VERSION} build checkpoint; delete it to "
                "start over"
            )
        differ = sorted(
            key
            for key in set(self.match) | set(meta.get("match", {}))
            if self.match.get(key) != meta["match"].get(key)
        )
        if differ:
            details = "; ".join(
                f"{k}: checkpoint {meta['match'].get(k)!r}, now {self.match.get(k)!r}"
                for k in differ
            )
            raise ConfigError(
                f"build checkpoint {self.path} was made by a different build ({details}); "
                "delete it or build without resuming"
            )
        n = arrays["stamps"].shape[0]
        if any(arrays[name].shape[:1] != (n,) for name in _ARRAYS):
            raise MapError(f"build checkpoint {self.path} is inconsistent (array lengths differ)")
        self._saved_entries = n
        return Restored(arrays=arrays, progress=BuildProgress.from_json(meta["progress"]))

    def maybe_save(self, builder: Any) -> bool:
        """Save when ``interval`` seconds have passed and new entries were embedded."""
        if time.monotonic() - self._saved_at < self.interval:
            return False
        return self.save(builder)

    def save(self, builder: Any) -> bool:
        """Write the builder's embedded entries (not the pending ones) atomically."""
        progress = builder.committed_state
        count = builder.embedded_count
        if progress is None or count == self._saved_entries:
            return False
        arrays = builder.embedded_arrays()
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "match": self.match,
            "progress": progress.to_json(),
        }
        with atomic_open(self.path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
        self._saved_entries = count
        self._saved_at = time.monotonic()
        log.debug("checkpoint: %d entries in %s", count, self.path)
        return True

    def remove(self) -> None:
        """Delete the checkpoint (after the map it led to has been saved)."""
        self.path.unlink(missing_ok=True)
