"""Odometry recorded in a bag: ``T_odom_lidar`` at any stamp, from tf or an Odometry topic.

A robot's bag carries its odometry as the tf chain ``odom -> base_link (-> LiDAR)`` and/or a
nav_msgs/Odometry topic (``/odom``). :class:`~liploc_ros.datasets.rosbag_reader.RosbagSource`
gives each frame ``Frame.odometry`` = ``T_odom_lidar`` interpolated (SLERP + linear) to the
frame's anchor stamp, with ``odometry_source``:

- ``"tf"``: the tf chain ``odom_frame`` -> ... -> LiDAR frame (odom_frame an ancestor);
- ``"topic"``: ``odom_topic`` (default ``/odom``) composed with tf from its child frame
  (base_link) to the LiDAR frame;
- ``"auto"``: ``odom_topic`` when given, else tf when odom_frame is above the LiDAR frame,
  else ``/odom`` when the bag has it (and the poses do not come from it), else none;
- ``"none"``: no odometry.

No odometry is a supported case (frames carry ``odometry`` None). The same bag's ground
truth must not come from the drifting tree: :func:`odometry_rooted` and
:func:`truth_candidates` let the pose choice skip it (see the reader's ``pose_source``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liploc_ros.datasets.interpolation import PoseTrack
from liploc_ros.datasets.tf_tree import TfTree, normalize_frame
from liploc_ros.errors import DatasetError

if TYPE_CHECKING:
    from liploc_ros.datasets.rosbag_config import BagReaderConfig

__all__ = [
    "DEFAULT_ODOM_TOPIC",
    "BagOdometry",
    "bag_custom_data",
    "choose_odometry",
    "odometry_rooted",
    "odometry_topic",
    "pose_topics_to_read",
    "track_in_lidar",
    "truth_candidates",
]

log = logging.getLogger(__name__)

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
POSE_TYPES = frozenset(
    {
        ODOMETRY_TYPE,
        "geometry_msgs/msg/PoseStamped",
        "geometry_msgs/msg/PoseWithCovarianceStamped",
    }
)
DEFAULT_ODOM_TOPIC = "/odom"

#: (stamp, header.frame_id, child_frame_id, T_frame_child) of one pose message
PoseSample = tuple[float, str, str, np.ndarray]
PoseFn = Callable[[float], "np.ndarray | None"]


@dataclass
class BagOdometry:
    """Where a bag's odometry comes from, and ``T_odom_lidar`` at a stamp (:meth:`at`)."""

    #: "tf", "topic" or "none"
    source: str = "none"
    topic: str | None = None
    #: the odometry frame (tf: ``odom_frame``; topic: its header.frame_id)
    frame: str | None = None
    #: Frame.meta["odometry"]: "recorded", or "simulated" where the bag's metadata says so
    label: str = "recorded"
    span: tuple[float, float] | None = None
    fn: PoseFn | None = None

    def at(self, stamp: float) -> np.ndarray | None:
        return None if self.fn is None else self.fn(stamp)

    def describe(self, lidar: str | None) -> str:
        if self.source == "none":
            return "none"
        where = f"tf {self.frame} -> {lidar}" if self.source == "tf" else f"{self.topic}"
        return f"{self.label}, {where}"


def odometry_topic(configured: str | None, topic_types: dict[str, str]) -> str | None:
    """The Odometry topic the odometry may read: the configured one, else ``/odom`` when the
    bag has it as nav_msgs/Odometry."""
    if configured is not None:
        return configured
    return DEFAULT_ODOM_TOPIC if topic_types.get(DEFAULT_ODOM_TOPIC) == ODOMETRY_TYPE else None


def odometry_rooted(tf: TfTree, lidar: str | None, odom_frame: str) -> bool:
    """Whether the LiDAR's tf tree hangs from the odometry frame (odom -> base_link -> LiDAR
    with nothing above odom): then tf gives the drifting odometry, not a map pose."""
    if lidar is None or lidar not in tf:
        return False
    return tf.root(lidar) == normalize_frame(odom_frame)


def truth_candidates(candidates: dict[str, str], odom_topic: str | None) -> dict[str, str]:
    """The pose topics that may hold the ground truth: all but the odometry topic, unless it is
    the only one (then it is all there is, as before odometry was read)."""
    others = {t: ty for t, ty in candidates.items() if t != odom_topic}
    return others if others else dict(candidates)


def bag_custom_data(reader: Any) -> dict[str, str]:
    """rosbag2 ``custom_data`` of the bag(s) (ROS 1 bags and bare files have none)."""
    out: dict[str, str] = {}
    for sub in getattr(reader, "readers", []):
        # rosbags keeps it on the storage's metadata (a bag directory's metadata.yaml)
        metadata = getattr(getattr(sub, "storage", sub), "metadata", None)
        custom = getattr(metadata, "custom", None)
        if isinstance(custom, dict):
            out.update({str(k): str(v) for k, v in custom.items()})
    return out


def track_in_lidar(
    tf: TfTree, track: PoseTrack, body: str, lidar: str | None, *, hint: str
) -> PoseFn:
    """``T_frame_lidar(t)`` from a track of ``T_frame_body`` and tf's body -> LiDAR (fixed
    when static); ``hint`` ends the error raised when tf has no such path."""
    if not body or lidar is None or body == lidar:
        return track.at
    try:
        tf.lookup(body, lidar, 0.0)
    except DatasetError as err:
        raise DatasetError(
            f"tf has no transform from {body!r} to the LiDAR frame {lidar!r} ({hint}); "
            f"transforms: {tf.describe()}"
        ) from err
    T_fixed = tf.lookup(body, lidar, 0.0)[0][0] if tf.is_static_path(body, lidar) else None

    def pose_fn(t: float) -> np.ndarray | None:
        T_frame_body = track.at(t)
        if T_frame_body is None:
            return None
        if T_fixed is not None:
            return T_frame_body @ T_fixed
        T, ok = tf.lookup(body, lidar, t)
        return T_frame_body @ T[0] if ok[0] else None

    return pose_fn


def pose_topics_to_read(cfg: BagReaderConfig, topic_types: dict[str, str]) -> set[str]:
    """The pose-type topics the construction pass reads: the poses' candidates (all of them
    unless ``pose_topic`` names one) and the odometry topic."""
    topics: set[str] = set()
    if cfg.pose_source in ("auto", "topic"):
        candidates = {t for t, ty in topic_types.items() if ty in POSE_TYPES}
        topics = {cfg.pose_topic} if cfg.pose_topic else candidates
    odom_topic = odometry_topic(cfg.odom_topic, topic_types)
    if cfg.odometry_source != "none" and odom_topic:
        topics.add(odom_topic)
    return topics


def choose_odometry(
    path: Path,
    cfg: BagReaderConfig,
    *,
    topic_types: dict[str, str],
    tf: TfTree,
    samples: dict[str, list[PoseSample]],
    lidar: str | None,
    pose_topic: str | None,
    custom: dict[str, str],
) -> BagOdometry:
    """The bag's odometry for ``cfg.odometry_source`` (see the module docstring); ``custom``:
    the bag's custom_data (liploc's writer labels simulated odometry there).

    An explicit mode that the bag cannot serve raises :class:`DatasetError`; ``auto`` falls
    back to no odometry and says why in the log.
    """
    mode: str = cfg.odometry_source  # a PoseSource, then the mode "auto" resolves to
    configured_topic, max_gap = cfg.odom_topic, cfg.max_pose_gap
    odom_frame = normalize_frame(cfg.odom_frame)
    label = custom.get("liploc_ros.odometry", "recorded")
    label = label if label in ("recorded", "simulated") else "recorded"
    topic = odometry_topic(configured_topic, topic_types)
    if mode == "none":
        return BagOdometry()
    if mode == "auto":
        if configured_topic is not None:
            mode = "topic"
        elif _tf_has_odometry(tf, lidar, odom_frame):
            mode = "tf"
        elif topic is not None and topic != pose_topic:
            try:
                return _from_topic(path, topic, topic_types, tf, samples, lidar, max_gap, label)
            except DatasetError as err:
                log.warning("%s: odometry from %s is unusable (%s): no odometry", path, topic, err)
                return BagOdometry()
        else:
            log.info(
                "%s: no odometry (no tf %s -> %s, no %s topic): frames carry odometry None",
                path,
                odom_frame,
                lidar,
                DEFAULT_ODOM_TOPIC,
            )
            return BagOdometry()
    if mode == "tf":
        if not _tf_has_odometry(tf, lidar, odom_frame):
            raise DatasetError(
                f"{path}: odometry_source='tf' but tf has no chain {odom_frame!r} -> LiDAR "
                f"frame {lidar!r} (set odom_frame); transforms: {tf.describe()}"
            )
        assert lidar is not None

        def fn(t: float) -> np.ndarray | None:
            T, ok = tf.lookup(odom_frame, lidar, t)
            return T[0] if ok[0] else None

        edge_spans = (tf.edge_span(child) for child in tf.path_edges(odom_frame, lidar))
        spans = [s for s in edge_spans if s is not None]
        span = (max(s[0] for s in spans), min(s[1] for s in spans)) if spans else None
        return BagOdometry("tf", None, odom_frame, label, span, fn)
    if mode == "topic":
        if topic is None:
            raise DatasetError(
                f"{path}: odometry_source='topic' but there is no {DEFAULT_ODOM_TOPIC} "
                f"nav_msgs/Odometry topic (set odom_topic); topics: {sorted(topic_types)}"
            )
        return _from_topic(path, topic, topic_types, tf, samples, lidar, max_gap, label)
    raise DatasetError(f"odometry_source must be auto, tf, topic or none, got {mode!r}")


def _tf_has_odometry(tf: TfTree, lidar: str | None, odom_frame: str) -> bool:
    return lidar is not None and lidar in tf and odom_frame in tf.ancestors(lidar)[1:]


def _from_topic(
    path: Path,
    topic: str,
    topic_types: dict[str, str],
    tf: TfTree,
    samples: dict[str, list[PoseSample]],
    lidar: str | None,
    max_gap: float | None,
    label: str,
) -> BagOdometry:
    if topic not in topic_types:
        raise DatasetError(f"{path}: no odometry topic {topic!r}; topics: {sorted(topic_types)}")
    if topic_types[topic] != ODOMETRY_TYPE:
        raise DatasetError(
            f"{path}: odometry topic {topic!r} is {topic_types[topic]}, not {ODOMETRY_TYPE}"
        )
    rows = samples.get(topic, [])
    if not rows:
        raise DatasetError(f"{path}: odometry topic {topic} has no readable message")
    parents = {s[1] for s in rows}
    children = {s[2] for s in rows}
    if len(parents) > 1 or len(children) > 1:
        raise DatasetError(
            f"{path}: odometry topic {topic} mixes frames {sorted(parents)} -> {sorted(children)}"
        )
    body = children.pop()
    if not body:
        raise DatasetError(f"{path}: odometry topic {topic} has no child_frame_id")
    track = PoseTrack(
        np.array([s[0] for s in rows]), np.stack([s[3] for s in rows]), max_gap=max_gap
    )
    fn = track_in_lidar(tf, track, body, lidar, hint=f"odometry topic {topic}")
    return BagOdometry("topic", topic, parents.pop(), label, (track.start, track.end), fn)
