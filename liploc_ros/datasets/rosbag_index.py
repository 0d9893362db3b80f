"""The construction pass over a bag: the LiDAR frame, tf, pose samples and the camera calibration.

:class:`~liploc_ros.datasets.rosbag_reader.RosbagSource` reads these once, cheaply, before it
streams any sensor data: the first cloud's frame id (:func:`lidar_frame_of`), then one pass over
the plan's tf, pose and camera info topics (:func:`read_index_topics`). :func:`camera_calibration`
turns the camera info and the static tf LiDAR -> camera into a
:class:`~liploc_ros.datasets.base.Calibration`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.datasets.base import Calibration
from liploc_ros.datasets.interpolation import make_transform
from liploc_ros.datasets.rosbag_config import BagReaderConfig
from liploc_ros.datasets.rosbag_messages import (
    MessageProblems,
    connections,
    deserialized,
    header_stamp,
)
from liploc_ros.datasets.rosbag_odometry import PoseSample
from liploc_ros.datasets.rosbag_plan import BagReadPlan
from liploc_ros.datasets.tf_tree import TfTree, normalize_frame
from liploc_ros.errors import DatasetError

__all__ = ["BagIndex", "camera_calibration", "lidar_frame_of", "read_index_topics"]

log = logging.getLogger(__name__)


@dataclass
class BagIndex:
    """What the construction pass read from the plan's tf, pose and camera info topics."""

    tf: TfTree
    #: pose topic -> its samples, in bag order
    samples: dict[str, list[PoseSample]] = field(default_factory=dict)
    #: the first CameraInfo message, if any
    camera_info: Any = None


def lidar_frame_of(
    reader: Any,
    plan: BagReadPlan,
    cfg: BagReaderConfig,
    problems: MessageProblems,
    counts: dict[str, int],
) -> str | None:
    """The configured LiDAR frame, else the first readable cloud's header.frame_id."""
    if cfg.lidar_frame is not None:
        return normalize_frame(cfg.lidar_frame)
    if plan.points_topic is None:
        return None
    selected = connections(reader, [plan.points_topic])
    for conn, ns, raw in reader.messages(connections=selected):
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as err:  # any failure of a corrupt buffer: try the next one
            problems.corrupt(conn.topic, ns * 1e-9, err, counts)
            continue
        frame = normalize_frame(msg.header.frame_id)
        if frame:
            return frame
        break
    return None


def read_index_topics(
    reader: Any,
    plan: BagReadPlan,
    cfg: BagReaderConfig,
    problems: MessageProblems,
    counts: dict[str, int],
) -> BagIndex:
    """One pass over /tf, /tf_static, the pose topics that may be used and camera info."""
    index = BagIndex(TfTree(max_gap=cfg.max_pose_gap))
    selected = connections(reader, plan.index_topics)
    if not selected:
        return index
    for topic, ns, msg in deserialized(reader, selected, counts, problems):
        if topic in plan.tf_topics:
            static = topic == cfg.tf_static_topic
            for tr in msg.transforms:
                try:
                    _add_transform(index.tf, tr, ns, static=static)
                except DatasetError as err:
                    problems.corrupt(topic, ns * 1e-9, err, counts)
        elif topic in plan.pose_topics:
            pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
            child = getattr(msg, "child_frame_id", "")
            p, q = pose.position, pose.orientation
            try:
                T = make_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
            except DatasetError as err:
                problems.corrupt(topic, ns * 1e-9, err, counts)
                continue
            index.samples.setdefault(topic, []).append(
                (
                    header_stamp(msg.header.stamp, ns),
                    normalize_frame(msg.header.frame_id),
                    normalize_frame(child),
                    T,
                )
            )
        elif index.camera_info is None:
            index.camera_info = msg
    return index


def _add_transform(tf: TfTree, tr: Any, ns: int, *, static: bool) -> None:
    """One TransformStamped into ``tf``; a bad one raises :class:`DatasetError`."""
    tr_t, rot = tr.transform.translation, tr.transform.rotation
    tf.add(
        tr.header.frame_id,
        tr.child_frame_id,
        header_stamp(tr.header.stamp, ns),
        (tr_t.x, tr_t.y, tr_t.z),
        (rot.x, rot.y, rot.z, rot.w),
        static=static,
    )


def camera_calibration(
    path: Path, tf: TfTree, info: Any, lidar_frame: str | None
) -> Calibration | None:
    """The calibration from a CameraInfo and the static tf LiDAR -> camera; None when either
    is missing (or the camera matrix is unset)."""
    if info is None:
        return None
    K = np.asarray(info.k if hasattr(info, "k") else info.K, np.float64)  # ROS 2 / ROS 1
    camera = normalize_frame(info.header.frame_id)
    if K.size != 9 or not np.any(K) or lidar_frame is None or not camera:
        return None
    try:
        if not tf.is_static_path(lidar_frame, camera):
            return None
        T_lidar_camera = tf.lookup(lidar_frame, camera, 0.0)[0][0]
    except DatasetError:
        log.info("%s: no static tf %s -> %s; no calibration", path, lidar_frame, camera)
        return None
    return Calibration(
        camera_matrix=K.reshape(3, 3).copy(),
        image_size=(int(info.width), int(info.height)),
        T_lidar_camera=T_lidar_camera,
    )
