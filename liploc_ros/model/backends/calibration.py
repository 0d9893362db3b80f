"""Frames to calibrate an INT8 encoder on and to verify a reduced precision with.

Post-training quantization learns each layer's activation range from inputs like the ones it
will see, so the frames come from the user's own data: by default the map's own drive
(``--calibration bag:drive.mcap``, ``kitti:ROOT:08``, ``synthetic:SEED:TRAVERSAL:FRAMES``,
any spec :func:`liploc_ros.datasets.open_source` takes). One drive gives two disjoint sets:

- **held-out frames** (``held_out``, default 100): evenly spaced along the drive, each with its
  pose; never used for calibration. They are both the fp32 map (LiDAR) and the queries
  (camera) of the Recall@1 check (:mod:`.acceptance`), as in the paper's protocol.
- **calibration frames** (``frames``, default 300, NNCF's default subset size): evenly spaced
  among the others.

A drive shorter than both together gives a quarter of its frames to the held-out set. The
set's id (part of an INT8 model's cache key) covers the spec, these counts and the source's
length, stamps and poses, so that another drive, or the same drive cut differently, is
another calibration; the frames' pixels are not hashed (that would mean reading the whole
drive just to find a cached model).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.errors import ConfigError, DatasetError, PreprocessError
from liploc_ros.model.backends.base import Side

if TYPE_CHECKING:
    from liploc_ros.datasets.base import Frame, FrameSource
    from liploc_ros.model.liploc_file import LoadedModel

#: where ``auto`` verifies a bf16 / fp16 encoder when no calibration source is given: the
#: demo town's mapping drive (synthetic, rendered on the fly; no data needed)
DEFAULT_VERIFICATION_SPEC = "synthetic:100:0:300"
#: held-out frames of that default check: few, because it runs on a first start-up
DEFAULT_VERIFICATION_FRAMES = 40


@dataclass(frozen=True)
class CalibrationConfig:
    """How many frames a calibration takes from its source."""

    #: calibration frames per encoder (0: a verification-only set)
    frames: int = 300
    #: held-out verification frames (each needs a pose)
    held_out: int = 100

    def __post_init__(self) -> None:
        if self.frames < 0:
            raise ConfigError(f"calibration frames must be >= 0, got {self.frames}")
        if self.held_out < 2:
            raise ConfigError(f"held-out frames must be at least 2, got {self.held_out}")


@dataclass(frozen=True)
class HeldOut:
    """Verification frames preprocessed for one model, with their ground-plane positions."""

    camera: np.ndarray
    lidar: np.ndarray
    #: (N, 2) x, y of each frame's LiDAR in the map frame (metres)
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)


def split_indices(count: int, posed: np.ndarray, config: CalibrationConfig) -> tuple[list, list]:
    """(held-out, calibration) frame indices of a drive of ``count`` frames, of which those
    where ``posed`` is True have a pose: both evenly spaced, disjoint."""
    candidates = np.flatnonzero(posed)
    if config.frames == 0 or count >= config.held_out + config.frames:
        want = config.held_out
    else:  # a short drive: a quarter of it is held out
        want = min(config.held_out, max(2, count // 4))
    want = min(want, len(candidates))
    if want < 2:
        raise DatasetError(f"the drive has {len(candidates)} frame(s) with a pose; 2 are needed")
    picks = np.unique(np.linspace(0, len(candidates) - 1, want).round().astype(int))
    held = sorted(int(i) for i in candidates[picks])
    rest = np.setdiff1d(np.arange(count), held)
    if config.frames == 0 or len(rest) == 0:
        return held, []
    take = min(config.frames, len(rest))
    spaced = np.unique(np.linspace(0, len(rest) - 1, take).round().astype(int))
    return held, [int(i) for i in rest[spaced]]


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _name(source: str | FrameSource) -> str:
    return source if isinstance(source, str) else source.name


def _position(frame: Frame) -> np.ndarray:
    pose = frame.pose
    if pose is None or not np.isfinite(pose).all():
        raise DatasetError(f"frame {frame.index} has no pose (held-out frames need one)")
    return np.asarray(pose[:2, 3], np.float64)


class CalibrationSet:
    """Calibration and held-out frames of one source (a spec, or a FrameSource object).

    ``held_out_source``: take the held-out frames from another source (all from its start,
    up to ``config.held_out``), e.g. to calibrate on one drive and verify on another.
    Frames are read on first use and kept, per encoder side and preprocessing.
    """

    def __init__(
        self,
        source: str | FrameSource,
        config: CalibrationConfig | None = None,
        *,
        held_out_source: str | FrameSource | None = None,
    ) -> None:
        self.config = config or CalibrationConfig()
        self._source = source
        self._held_source = held_out_source
        self.spec = _name(source)
        self._opened: dict[str, FrameSource] = {}
        self._indices: tuple[list, list] | None = None
        self._id: str | None = None
        self._memo: dict[tuple[str, str], np.ndarray | HeldOut] = {}

    def __repr__(self) -> str:
        return f"CalibrationSet({self.spec!r}, {self.config})"

    # -- the source -------------------------------------------------------------------
    def _open(self, which: str | FrameSource | None) -> FrameSource:
        assert which is not None
        if not isinstance(which, str):
            return which
        if which not in self._opened:
            from liploc_ros.datasets.registry import open_source

            self._opened[which] = open_source(which)
        return self._opened[which]

    def _meta(self, source: FrameSource) -> tuple[int, np.ndarray, np.ndarray]:
        """(frame count, stamps, (N, 2) positions, NaN without a pose), cheaply."""
        from liploc_ros.datasets.base import IndexedSource

        if isinstance(source, IndexedSource):
            poses = source.poses
            count = len(source)
            xy = np.full((count, 2), np.nan) if poses is None else poses[:, :2, 3]
            return count, np.asarray(source.stamps, np.float64), np.asarray(xy, np.float64)
        times: list[float] = []
        places: list[tuple[float, float]] = []
        for frame in source.iter_frames(image=False, points=False):
            times.append(frame.stamp)
            pose = frame.pose
            ok = pose is not None and bool(np.isfinite(pose).all())
            places.append((pose[0, 3], pose[1, 3]) if ok and pose is not None else (np.nan,) * 2)
        return len(times), np.asarray(times, np.float64), np.asarray(places, np.float64)

    def indices(self) -> tuple[list, list]:
        """(held-out, calibration) frame indices (held-out: of the held-out source)."""
        if self._indices is None:
            count, stamps, xy = self._meta(self._open(self._source))
            identity: dict[str, object] = {
                "spec": self.spec,
                "config": asdict(self.config),
                "count": count,
                "digest": _digest(stamps, xy),
            }
            if self._held_source is None:
                held, calib = split_indices(count, np.isfinite(xy).all(axis=1), self.config)
            else:
                h_count, h_stamps, h_xy = self._meta(self._open(self._held_source))
                posed = np.flatnonzero(np.isfinite(h_xy).all(axis=1))
                held = [int(i) for i in posed[: self.config.held_out]]
                if len(held) < 2:
                    raise DatasetError("the held-out source has fewer than 2 frames with a pose")
                take = min(count, self.config.frames)
                calib = sorted({int(i) for i in np.linspace(0, count - 1, take).round()})
                identity["held_out"] = {
                    "spec": _name(self._held_source),
                    "count": h_count,
                    "digest": _digest(h_stamps, h_xy),
                }
            self._indices = (held, calib if self.config.frames else [])
            text = json.dumps(identity, sort_keys=True)
            self._id = hashlib.sha256(text.encode()).hexdigest()[:12]
        return self._indices

    @property
    def held_out_spec(self) -> str:
        """Where the held-out frames come from (the source, or the held-out source)."""
        return self.spec if self._held_source is None else _name(self._held_source)

    @property
    def id(self) -> str:
        """12 hex digits naming this calibration (see the module's docstring)."""
        self.indices()
        assert self._id is not None
        return self._id

    def describe(self) -> dict[str, object]:
        """What an INT8 model's manifest records about its calibration."""
        held, calib = self.indices()
        return {
            "source": self.spec,
            "id": self.id,
            "calibration_frames": len(calib),
            "held_out_frames": len(held),
        }

    # -- frames ---------------------------------------------------------------------------
    def _frames(self, source: FrameSource, wanted: list, *, image: bool, points: bool) -> list:
        from liploc_ros.datasets.base import IndexedSource

        if isinstance(source, IndexedSource):
            return [source.frame(i, image=image, points=points) for i in wanted]
        keep = set(wanted)
        found = [
            f
            for pos, f in enumerate(source.iter_frames(image=image, points=points))
            if pos in keep
        ]
        if len(found) != len(wanted):
            raise DatasetError(f"{source.name}: {len(wanted)} frames wanted, {len(found)} read")
        return found

    def _inputs(self, loaded: LoadedModel, side: Side, frames: list) -> np.ndarray:
        from liploc_ros.preprocess import camera_input, lidar_input

        pre = loaded.preprocess
        out = []
        for frame in frames:
            data = frame.image if side == "camera" else frame.points
            if data is None:
                what = "camera images" if side == "camera" else "LiDAR scans"
                raise DatasetError(f"calibration source {self.spec!r} has no {what}")
            try:
                out.append(camera_input(data, pre) if side == "camera" else lidar_input(data, pre))
            except PreprocessError as err:
                raise DatasetError(f"{self.spec}: frame {frame.index}: {err}") from err
        return np.stack(out).astype(np.float32, copy=False)

    def _memo_key(self, loaded: LoadedModel, what: str) -> tuple[str, str]:
        return what, json.dumps(to_dict(loaded.preprocess), sort_keys=True)

    def calibration_inputs(self, loaded: LoadedModel, side: Side) -> np.ndarray:
        """(M, 3, S, S) float32 preprocessed calibration inputs of ``side``'s encoder."""
        key = self._memo_key(loaded, side)
        if key not in self._memo:
            _, calib = self.indices()
            if not calib:
                raise ConfigError(f"{self!r} has no calibration frames (frames is 0)")
            frames = self._frames(self._open(self._source), calib, image=side == "camera",
                                  points=side == "lidar")  # fmt: skip
            self._memo[key] = self._inputs(loaded, side, frames)
        value = self._memo[key]
        assert isinstance(value, np.ndarray)
        return value

    def held_out(self, loaded: LoadedModel) -> HeldOut:
        """The held-out frames preprocessed for ``loaded``, with their positions."""
        key = self._memo_key(loaded, "held_out")
        if key not in self._memo:
            held, _ = self.indices()
            source = self._open(self._held_source if self._held_source is not None
                                else self._source)  # fmt: skip
            frames = self._frames(source, held, image=True, points=True)
            self._memo[key] = HeldOut(
                camera=self._inputs(loaded, "camera", frames),
                lidar=self._inputs(loaded, "lidar", frames),
                positions=np.stack([_position(f) for f in frames]),
            )
        value = self._memo[key]
        assert isinstance(value, HeldOut)
        return value


def as_calibration_set(
    calibration: str | FrameSource | CalibrationSet | None,
) -> CalibrationSet | None:
    """A calibration given as a spec, a source or a set, as a set (None stays None)."""
    if calibration is None or isinstance(calibration, CalibrationSet):
        return calibration
    if isinstance(calibration, str) and not calibration.strip():
        return None
    return CalibrationSet(calibration)


def default_verification_set() -> CalibrationSet:
    """The held-out frames ``auto`` checks a bf16 / fp16 encoder on without user data."""
    config = CalibrationConfig(frames=0, held_out=DEFAULT_VERIFICATION_FRAMES)
    return CalibrationSet(DEFAULT_VERIFICATION_SPEC, config)
