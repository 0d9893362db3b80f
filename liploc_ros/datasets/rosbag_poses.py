"""A bag's ground-truth poses: ``T_map_lidar`` at any stamp, from tf or a pose topic.

:func:`bag_poses` builds the :class:`BagPoses` track that
:func:`~liploc_ros.datasets.rosbag_plan.choose_pose_source` chose: the tf chain map -> ... ->
LiDAR frame (/tf and /tf_static combined), or a pose topic's samples composed with tf from the
pose's frame to the LiDAR frame; both interpolated (SLERP + linear) within ``max_pose_gap``.
Everything it needs was read by the construction pass, so it reads no bag itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liploc_ros.datasets.interpolation import PoseTrack
from liploc_ros.datasets.rosbag_config import BagReaderConfig
from liploc_ros.datasets.rosbag_odometry import PoseFn, PoseSample, track_in_lidar
from liploc_ros.datasets.rosbag_plan import PoseSourceChoice
from liploc_ros.datasets.tf_tree import TfTree, normalize_frame
from liploc_ros.errors import DatasetError

__all__ = ["BagPoses", "bag_poses", "tf_span"]

log = logging.getLogger(__name__)


@dataclass
class BagPoses:
    """Where a bag's poses come from, and ``T_map_lidar`` at a stamp (:meth:`at`)."""

    #: "tf", "topic" or "none"
    source: str = "none"
    #: the pose topic (source "topic")
    topic: str | None = None
    #: the frame the poses are expressed in
    map_frame: str | None = None
    #: (first, last) stamp the poses cover
    span: tuple[float, float] | None = None
    #: None: frames carry no pose (and none is dropped for the lack of one)
    fn: PoseFn | None = None

    def at(self, stamp: float) -> np.ndarray | None:
        return None if self.fn is None else self.fn(stamp)


def tf_span(tf: TfTree, target: str, source: str) -> tuple[float, float] | None:
    """The stamps where every dynamic edge between ``target`` and ``source`` has samples."""
    edge_spans = (tf.edge_span(child) for child in tf.path_edges(target, source))
    spans = [s for s in edge_spans if s is not None]
    if not spans:
        return None
    return max(s[0] for s in spans), min(s[1] for s in spans)


def bag_poses(
    path: Path,
    cfg: BagReaderConfig,
    choice: PoseSourceChoice,
    tf: TfTree,
    samples: dict[str, list[PoseSample]],
    lidar: str | None,
) -> BagPoses:
    """The poses ``choice`` names, from the construction pass's tf tree and pose samples;
    a source the bag cannot serve raises :class:`DatasetError`."""
    if choice.source == "tf":
        assert lidar is not None  # choose_pose_source checked it
        return _poses_from_tf(path, cfg, tf, lidar)
    if choice.source == "topic":
        assert choice.topic is not None
        return _poses_from_topic(path, cfg, choice.topic, tf, samples.get(choice.topic, []), lidar)
    return BagPoses(source=choice.source, map_frame=cfg.map_frame)


def _poses_from_tf(path: Path, cfg: BagReaderConfig, tf: TfTree, lidar: str) -> BagPoses:
    if lidar not in tf:
        raise DatasetError(
            f"{path}: the LiDAR frame {lidar!r} is not in the tf tree; transforms: {tf.describe()}"
        )
    map_frame = normalize_frame(cfg.map_frame) if cfg.map_frame else tf.root(lidar)
    if map_frame == lidar:
        raise DatasetError(
            f"{path}: the LiDAR frame {lidar!r} is the root of its tf tree, there "
            f"is no map frame above it; transforms: {tf.describe()}"
        )

    def pose_fn(t: float) -> np.ndarray | None:
        T, ok = tf.lookup(map_frame, lidar, t)
        return T[0] if ok[0] else None

    tf.lookup(map_frame, lidar, 0.0)  # raises now if there is no path at all
    return BagPoses("tf", None, map_frame, tf_span(tf, map_frame, lidar), pose_fn)


def _poses_from_topic(
    path: Path,
    cfg: BagReaderConfig,
    topic: str,
    tf: TfTree,
    samples: list[PoseSample],
    lidar: str | None,
) -> BagPoses:
    if not samples:
        raise DatasetError(f"{path}: pose topic {topic} has no readable message")
    parents = {s[1] for s in samples}
    if len(parents) > 1:
        raise DatasetError(f"{path}: pose topic {topic} mixes frames {sorted(parents)}")
    parent = parents.pop()
    if cfg.map_frame is not None and normalize_frame(cfg.map_frame) != parent:
        raise DatasetError(
            f"{path}: pose topic {topic} gives poses in {parent!r}, not in "
            f"map_frame {cfg.map_frame!r}"
        )
    map_frame = parent or cfg.map_frame
    children = {s[2] for s in samples}
    body = normalize_frame(cfg.pose_frame) if cfg.pose_frame else None
    if body is None:
        body = children.pop() if len(children) == 1 else ""
    track = PoseTrack(
        np.array([s[0] for s in samples]),
        np.stack([s[3] for s in samples]),
        max_gap=cfg.max_pose_gap,
    )
    if body and lidar is None:
        log.info("%s: no LiDAR frame known; poses are those of %r", path, body)
    elif body and lidar is not None and body != lidar:  # (lidar is None: the branch above)
        try:
            tf.lookup(body, lidar, 0.0)
        except DatasetError as err:
            raise DatasetError(
                f"{path}: pose topic {topic} gives the pose of {body!r}, but tf has no "
                f"transform from it to the LiDAR frame {lidar!r} (set pose_frame if the "
                f"poses are the LiDAR's); transforms: {tf.describe()}"
            ) from err
    fn = track_in_lidar(tf, track, body, lidar, hint=f"pose topic {topic}")
    return BagPoses("topic", topic, map_frame, (track.start, track.end), fn)
