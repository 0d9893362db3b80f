"""A minimal offline tf buffer: /tf and /tf_static samples -> transforms between any two frames.

tf2_ros is not installable with pip, and a bag reader needs the whole history at once rather
than tf2's sliding window anyway. The tree is built from ``(parent, child, stamp, transform)``
samples; a lookup walks both frames up to their common ancestor and composes the edges, each
dynamic edge interpolated at the stamp (:class:`~liploc_ros.datasets.interpolation.PoseTrack`).
A stamp outside any dynamic edge's samples on the path has no transform, as in tf2.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Sequence

import numpy as np

from liploc_ros.datasets.interpolation import PoseTrack, make_transform, make_transforms
from liploc_ros.errors import DatasetError
from liploc_ros.geometry import invert_transform

__all__ = ["TfTree", "normalize_frame"]

log = logging.getLogger(__name__)


def normalize_frame(frame_id: str) -> str:
    """ROS 1 frame ids often carry a leading slash ("/world"); tf2 ignores it, so do we."""
    return frame_id.strip().lstrip("/")


class _Edge:
    """The transform of ``child`` in ``parent`` (T_parent_child), static or sampled in time."""

    def __init__(self, parent: str, static: bool) -> None:
        self.parent = parent
        self.static = static
        self.static_value: np.ndarray | None = None
        # flat rows of (stamp, tx, ty, tz, qx, qy, qz, qw): compact for 100 Hz INS /tf
        self.samples = array("d")
        self.track: PoseTrack | None = None


class TfTree:
    """Every transform of a bag, queried after all samples are in (call :meth:`add` first)."""

    def __init__(self, *, max_gap: float | None = None) -> None:
        self.max_gap = max_gap
        self._edges: dict[str, _Edge] = {}
        self._conflicts: set[tuple[str, str, str]] = set()

    def add(
        self,
        parent: str,
        child: str,
        stamp: float,
        translation: Sequence[float],
        quat_xyzw: Sequence[float],
        *,
        static: bool,
    ) -> None:
        """Record one TransformStamped (``header.frame_id`` = parent).

        An invalid sample (empty or equal frame ids, non-finite values, zero quaternion)
        raises :class:`DatasetError` and leaves the tree unchanged.
        """
        parent, child = normalize_frame(parent), normalize_frame(child)
        values = (float(stamp), *map(float, translation), *map(float, quat_xyzw))
        norm = sum(q * q for q in values[4:])
        if (
            not parent
            or not child
            or parent == child
            or len(values) != 8
            or not all(map(math.isfinite, values))
            or norm < 1e-24
        ):
            raise DatasetError(f"invalid transform {parent!r} -> {child!r}: {values}")
        edge = self._edges.get(child)
        if edge is None:
            edge = self._edges[child] = _Edge(parent, static)
        elif edge.parent != parent or edge.static != static:
            # tf2 would also reject a frame with two parents; keep the first and say so once
            key = (child, edge.parent, parent)
            if key not in self._conflicts:
                self._conflicts.add(key)
                log.warning(
                    "tf: frame %r already has parent %r (%s); ignoring %s transforms from %r",
                    child,
                    edge.parent,
                    "static" if edge.static else "dynamic",
                    "static" if static else "dynamic",
                    parent,
                )
            return
        if static:  # the latest static transform wins, as in tf2
            edge.static_value = make_transform(values[1:4], values[4:8])
        else:
            edge.samples.extend(values)
            edge.track = None

    @property
    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def __contains__(self, frame: str) -> bool:
        return normalize_frame(frame) in self.frames

    def describe(self) -> str:
        """Edges as "parent -> child (static|N samples)", for error messages."""
        if not self._edges:
            return "no transforms"
        parts = []
        for child, edge in sorted(self._edges.items()):
            kind = "static" if edge.static else f"{len(edge.samples) // 8} samples"
            parts.append(f"{edge.parent} -> {child} ({kind})")
        return "; ".join(parts)

    def ancestors(self, frame: str) -> list[str]:
        """``frame`` and its parents up to the root of its tree."""
        chain = [normalize_frame(frame)]
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]].parent
            if parent in chain:
                raise DatasetError(f"tf has a cycle through {parent!r}: {self.describe()}")
            chain.append(parent)
        return chain

    def root(self, frame: str) -> str:
        return self.ancestors(frame)[-1]

    def is_static_path(self, target: str, source: str) -> bool:
        """Whether every edge between the two frames is static (the transform is constant)."""
        return all(self._edges[f].static for f in self.path_edges(target, source))

    def lookup(
        self, target: str, source: str, stamps: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``T_target_source`` at each stamp: ``(transforms (M, 4, 4), valid (M,))``."""
        target, source = normalize_frame(target), normalize_frame(source)
        t = np.atleast_1d(np.asarray(stamps, np.float64))
        up_target, up_source = self.ancestors(target), self.ancestors(source)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise DatasetError(
                f"tf has no path between {target!r} and {source!r}; transforms: {self.describe()}"
            )
        T_common_source, valid_s = self._chain(up_source[: up_source.index(common)], t)
        T_common_target, valid_t = self._chain(up_target[: up_target.index(common)], t)
        return invert_transform(T_common_target) @ T_common_source, valid_s & valid_t

    def edge_span(self, child: str) -> tuple[float, float] | None:
        """First and last stamp of a dynamic edge (``None`` for a static one)."""
        edge = self._edges[normalize_frame(child)]
        if edge.static:
            return None
        track = self._track(edge)
        return track.start, track.end

    def path_edges(self, target: str, source: str) -> list[str]:
        """The child frames of the edges between two frames (each edge named by its child)."""
        up_target, up_source = self.ancestors(target), self.ancestors(source)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise DatasetError(
                f"tf has no path between {target!r} and {source!r}; transforms: {self.describe()}"
            )
        return up_source[: up_source.index(common)] + up_target[: up_target.index(common)]

    def _chain(self, children: list[str], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """T_top_bottom for the edges listed bottom-up (each child's transform in its parent)."""
        out = np.broadcast_to(np.eye(4), (t.size, 4, 4)).copy()
        valid = np.ones(t.size, bool)
        for child in children:
            edge = self._edges[child]
            if edge.static:
                assert edge.static_value is not None
                out = edge.static_value @ out
                continue
            poses, ok = self._track(edge).sample(t)
            valid &= ok
            out = poses @ out
        out[~valid] = np.nan
        return out, valid

    def _track(self, edge: _Edge) -> PoseTrack:
        if edge.track is None:
            rows = np.frombuffer(edge.samples, np.float64).reshape(-1, 8)
            poses = make_transforms(rows[:, 1:4], rows[:, 4:8])
            edge.track = PoseTrack(rows[:, 0], poses, max_gap=self.max_gap)
        return edge.track
