"""The incremental map builder: scans with poses in, a map database out.

:class:`MapBuilder` is shared by ``liploc build-map`` (through
:func:`liploc_ros.mapping.pipeline.build_map`, which overlaps reading and preprocessing with
encoding) and by the ROS map builder node (which calls :meth:`MapBuilder.add_scan` per
scan). Scans are embedded a batch at a time; entries keep the order they were added in.

Each kept scan (a keyframe) becomes one entry per crop heading of the config
(:mod:`liploc_ros.mapping.headings`): the range image with its crop centred at that heading,
at the LiDAR pose turned by it, all sharing the keyframe's id. A batch holds whole keyframes
only, so that a build checkpoint never ends in the middle of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros import __version__
from liploc_ros.errors import EmptyCloudError, MapError, PreprocessError
from liploc_ros.mapdb import MapDatabase, MapInfo
from liploc_ros.mapping.config import DEFAULT_CONFIG, MapBuildConfig
from liploc_ros.mapping.headings import heading_turn
from liploc_ros.mapping.keyframes import KeyframeSelector
from liploc_ros.model.inference import Embedder
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.tensors import lidar_input


def check_pose(pose: Any) -> np.ndarray | None:
    """``pose`` as a 4 x 4 float64 ``T_map_lidar``, or None when it is missing or not finite
    (a source's way of saying "no pose for this frame"); a wrong shape is an error."""
    if pose is None:
        return None
    arr = np.asarray(pose, dtype=np.float64)
    if arr.shape != (4, 4):
        raise PreprocessError(f"a scan's pose must be a 4 x 4 matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        return None
    return arr


def check_points(points: Any) -> np.ndarray:
    """An N x 3+ float scan, with an :class:`EmptyCloudError` for an empty one (cheap test,
    done before the keyframe test so that an empty scan never becomes a keyframe)."""
    if points is None:
        raise PreprocessError("the frame carries no LiDAR scan (points is None)")
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise PreprocessError(f"a scan must be N x 3 or N x 4, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EmptyCloudError("point cloud is empty")
    return arr


def keyframe_inputs(
    points: np.ndarray, cfg: PreprocessConfig, headings: Sequence[float]
) -> np.ndarray:
    """(H, 3, S, S) float32: the LiDAR input of one scan with its crop centred at each of
    ``headings`` (degrees), in that order: the map entries of one keyframe."""
    return np.stack([lidar_input(points, cfg, float(h)) for h in headings])


@dataclass(frozen=True)
class _Batch:
    """Embedded entries, committed to the builder in one list append."""

    embeddings: np.ndarray
    poses: np.ndarray
    stamps: np.ndarray
    frame_index: np.ndarray
    heading_deg: np.ndarray
    keyframes: np.ndarray
    #: the pipeline's state after the last entry of the batch (for build checkpoints)
    state: Any = None


@dataclass
class _Pending:
    poses: list[np.ndarray] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    frame_index: list[int] = field(default_factory=list)
    heading_deg: list[float] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    #: one per keyframe (not per entry)
    states: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stamps)


class MapBuilder:
    """Collects keyframe scans, embeds them in batches and makes a :class:`MapDatabase`.

    ``source`` names the drive or bag the scans come from (stored in the map). The model's
    own LiDAR preprocessing (``embedder.loaded.preprocess``) is what scans go through, so a
    map always matches the model that will query it.
    """

    def __init__(
        self, embedder: Embedder, config: MapBuildConfig = DEFAULT_CONFIG, *, source: str = ""
    ) -> None:
        self.embedder = embedder
        self.config = config
        self.source = source
        self.preprocess = embedder.loaded.preprocess
        self.keyframes = KeyframeSelector(config.keyframe_distance)
        #: scans given to :meth:`add_scan` without a (finite) pose
        self.skipped_no_pose = 0
        #: crop headings (degrees): one entry per keyframe and heading
        self.headings = config.headings
        self._turns = [heading_turn(h) for h in self.headings]
        size = self.preprocess.lidar_image_size
        self._input_shape = (3, size, size)
        per = len(self.headings)
        # whole keyframes per batch; at least one even when it has more headings than that
        self._capacity = max(1, config.batch_size // per) * per
        # Filled in place and reused: no per-batch allocation of B x 3 x S x S floats.
        self._buffer = np.empty((self._capacity, *self._input_shape), np.float32)
        self._pending = _Pending()
        self._batches: list[_Batch] = []
        self._next_keyframe = 0

    # -- adding scans ------------------------------------------------------------------

    def add_scan(
        self, points: np.ndarray, pose: np.ndarray | None, stamp: float, *, frame_index: int = -1
    ) -> bool:
        """Offer one scan (N x 4 float32, LiDAR frame) taken at ``pose`` (``T_map_lidar``).

        Returns False when it is not kept: no pose (counted in :attr:`skipped_no_pose`) or
        too close to the last kept scan. A kept scan is preprocessed (once per heading) and
        queued; a full batch is embedded on the spot. An empty scan raises
        :class:`EmptyCloudError` and is not a keyframe.
        """
        checked = check_pose(pose)
        if checked is None:
            self.skipped_no_pose += 1
            return False
        pts = check_points(points)
        if not self.keyframes.accept(checked[:3, 3]):
            return False
        inputs = keyframe_inputs(pts, self.preprocess, self.headings)
        self.add_input(inputs, checked, stamp, frame_index=frame_index)
        return True

    def add_input(
        self,
        lidar: np.ndarray,
        pose: np.ndarray,
        stamp: float,
        *,
        frame_index: int = -1,
        state: Any = None,
    ) -> None:
        """Queue an already selected and preprocessed scan as the next keyframe, no keyframe
        test: H x 3 x S x S float32, one input per heading of the config, as
        :func:`keyframe_inputs` makes it (3 x S x S with the one default heading). ``pose`` is
        the LiDAR's; each entry's is turned by its heading. ``state`` is opaque bookkeeping
        kept with the batch (build checkpoints)."""
        arr = np.asarray(lidar)
        per = len(self.headings)
        if per == 1 and arr.shape == self._input_shape:
            arr = arr[None]
        if arr.shape != (per, *self._input_shape):
            raise PreprocessError(
                f"a preprocessed scan must be {(per, *self._input_shape)} for this model and "
                f"{per} heading(s), got {arr.shape}"
            )
        base = np.array(pose, dtype=np.float64).reshape(4, 4)
        pending = self._pending
        if len(pending) + per > self._capacity:
            self._embed_pending()
        self._buffer[len(pending) : len(pending) + per] = arr
        for heading, turn in zip(self.headings, self._turns, strict=True):
            pending.poses.append(base @ turn)
            pending.stamps.append(float(stamp))
            pending.frame_index.append(int(frame_index))
            pending.heading_deg.append(heading)
            pending.keyframes.append(self._next_keyframe)
        pending.states.append(state)
        self._next_keyframe += 1
        if len(pending) + per > self._capacity:
            self._embed_pending()

    def add_embedded(
        self,
        embeddings: np.ndarray,
        poses: np.ndarray,
        stamps: np.ndarray,
        frame_index: np.ndarray,
        heading_deg: np.ndarray | None = None,
        keyframes: np.ndarray | None = None,
        *,
        state: Any = None,
    ) -> None:
        """Append entries embedded earlier (a resumed build); pending scans go first.

        ``heading_deg`` defaults to 0 and ``keyframes`` to one new keyframe per entry; new
        keyframes are numbered on from the largest id given."""
        self._embed_pending()
        emb = np.asarray(embeddings, dtype=np.float32)
        n = emb.shape[0]
        if emb.ndim != 2 or emb.shape[1] != self.embedder.embed_dim:
            raise MapError(
                f"embeddings must be N x {self.embedder.embed_dim} for this model, got {emb.shape}"
            )
        if keyframes is None:
            keyframes = self._next_keyframe + np.arange(n, dtype=np.int64)
        batch = _Batch(
            embeddings=emb,
            poses=np.asarray(poses, dtype=np.float64).reshape(n, 4, 4),
            stamps=np.asarray(stamps, dtype=np.float64).reshape(n),
            frame_index=np.asarray(frame_index, dtype=np.int64).reshape(n),
            heading_deg=np.zeros(n, np.float32)
            if heading_deg is None
            else np.asarray(heading_deg, dtype=np.float32).reshape(n),
            keyframes=np.asarray(keyframes, dtype=np.int64).reshape(n),
            state=state,
        )
        self._batches.append(batch)
        if n:
            self._next_keyframe = max(self._next_keyframe, int(batch.keyframes.max()) + 1)

    def flush(self) -> None:
        """Embed the scans still waiting for a full batch."""
        self._embed_pending()

    def _embed_pending(self) -> None:
        pending = self._pending
        n = len(pending)
        if n == 0:
            return
        embeddings = self.embedder.embed_lidar(self._buffer[:n])
        batch = _Batch(
            embeddings=embeddings,
            poses=np.stack(pending.poses),
            stamps=np.asarray(pending.stamps, dtype=np.float64),
            frame_index=np.asarray(pending.frame_index, dtype=np.int64),
            heading_deg=np.asarray(pending.heading_deg, dtype=np.float32),
            keyframes=np.asarray(pending.keyframes, dtype=np.int64),
            state=pending.states[-1],
        )
        # One append commits the batch: an interrupt leaves it either fully in or out.
        self._batches.append(batch)
        self._pending = _Pending()

    # -- results -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Entries kept so far, embedded or pending."""
        return self.embedded_count + len(self._pending)

    @property
    def embedded_count(self) -> int:
        return sum(b.embeddings.shape[0] for b in self._batches)

    @property
    def keyframe_count(self) -> int:
        """Keyframes kept so far (each is one entry per heading), embedded or pending."""
        return self._next_keyframe

    @property
    def committed_state(self) -> Any:
        """The ``state`` given with the last embedded entry (None before any)."""
        return self._batches[-1].state if self._batches else None

    @property
    def route_length_m(self) -> float:
        """Metres travelled over the posed scans offered to :meth:`add_scan`."""
        return self.keyframes.route_length

    def embedded_arrays(self) -> dict[str, np.ndarray]:
        """The embedded entries so far (pending ones excluded) as plain arrays."""
        dim = self.embedder.embed_dim
        batches = self._batches
        return {
            "embeddings": np.concatenate(
                [np.zeros((0, dim), np.float32)] + [b.embeddings for b in batches]
            ),
            "poses": np.concatenate([np.zeros((0, 4, 4))] + [b.poses for b in batches]),
            "stamps": np.concatenate([np.zeros(0)] + [b.stamps for b in batches]),
            "frame_index": np.concatenate(
                [np.zeros(0, np.int64)] + [b.frame_index for b in batches]
            ),
            "heading_deg": np.concatenate(
                [np.zeros(0, np.float32)] + [b.heading_deg for b in batches]
            ),
            "keyframes": np.concatenate([np.zeros(0, np.int64)] + [b.keyframes for b in batches]),
        }

    def map_info(self) -> MapInfo:
        """What the map records about its model, preprocessing and origin."""
        loaded = self.embedder.loaded
        return MapInfo(
            model_fingerprint=loaded.fingerprint,
            model_name=loaded.model_config.name,
            embed_dim=loaded.embed_dim,
            normalized=loaded.normalize,
            lidar=self.preprocess.lidar,
            frame_id=self.config.frame_id,
            sources=(self.source or "unnamed",),
            liploc_ros_version=__version__,
        )

    def to_database(self) -> MapDatabase:
        """Embed what is pending and return the map (entries in the order they were added)."""
        self.flush()
        if not self._batches:
            raise MapError(
                f"no map entries from {self.source or 'the scans given'}: no scan had a pose "
                f"({self.skipped_no_pose} without one)"
                if self.skipped_no_pose
                else f"no map entries from {self.source or 'the scans given'}: no scan was added"
            )
        arrays = self.embedded_arrays()
        embeddings = arrays["embeddings"]
        if self.config.dtype == "float16":
            embeddings = embeddings.astype(np.float16)
        return MapDatabase.from_poses(
            embeddings,
            arrays["poses"],
            arrays["stamps"],
            self.map_info(),
            frame_index=arrays["frame_index"],
            heading_deg=arrays["heading_deg"],
            keyframes=arrays["keyframes"],
        )

    def save(self, path: str | Path, *, index: str | None = None) -> Path:
        """Flush and write the map atomically to ``path`` (``index`` defaults to the
        config's)."""
        return self.to_database().save(path, index=index or self.config.index)
