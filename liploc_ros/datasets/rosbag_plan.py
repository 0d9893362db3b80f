"""What to read from a bag and how, decided from its topic types and the config alone.

:func:`plan_bag_read` turns a bag's ``topic -> message type`` map and a
:class:`~liploc_ros.datasets.rosbag_config.BagReaderConfig` into a :class:`BagReadPlan`: the
image, point cloud and camera info topics, which of them anchors the frames, and which tf and
pose topics the construction pass reads. :func:`choose_pose_source` then picks where
``Frame.pose`` comes from, given the LiDAR frame and whether the LiDAR's tf tree is the drifting
odometry (the only facts it needs from the messages). Neither opens a bag, so both are tested on
plain dictionaries; a choice the bag cannot serve is a :class:`DatasetError` listing the
candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from liploc_ros.datasets.rosbag_config import BagReaderConfig
from liploc_ros.datasets.rosbag_odometry import (
    POSE_TYPES,
    odometry_topic,
    pose_topics_to_read,
    truth_candidates,
)
from liploc_ros.errors import DatasetError

__all__ = [
    "CAMERA_INFO_TYPES",
    "CLOUD_TYPES",
    "DEFAULT_IMAGE_TOPICS",
    "DEFAULT_POINTS_TOPICS",
    "IMAGE_TYPES",
    "TF_TYPES",
    "BagReadPlan",
    "PoseSourceChoice",
    "StreamPlan",
    "choose_pose_source",
    "describe_topics",
    "pick_topic",
    "plan_bag_read",
]

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
CLOUD_TYPES = frozenset({"sensor_msgs/msg/PointCloud2"})
TF_TYPES = frozenset({"tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"})
CAMERA_INFO_TYPES = frozenset({"sensor_msgs/msg/CameraInfo"})

#: tried first when no topic is given: kitti2bag's and kitti2mcap's names
DEFAULT_IMAGE_TOPICS = (
    "/kitti/camera_color_left/image_raw",
    "/kitti/camera_color_left/image_raw/compressed",
)
DEFAULT_POINTS_TOPICS = ("/kitti/velo/pointcloud", "/kitti/velodyne_points")

Where = str | Path


@dataclass(frozen=True)
class StreamPlan:
    """The topics one streaming pass reads: the anchor's, and the partner paired with it."""

    anchor_topic: str
    #: None: frames carry only the anchor's modality
    partner_topic: str | None
    want_image: bool
    want_points: bool


@dataclass(frozen=True)
class BagReadPlan:
    """The topics a bag is read from (see :func:`plan_bag_read`)."""

    image_topic: str | None
    #: the image topic's message type (Image or CompressedImage)
    image_type: str | None
    points_topic: str | None
    #: "lidar": one frame per scan; "camera": one per image
    anchor: Literal["lidar", "camera"]
    camera_info_topic: str | None
    #: the tf topics present with a TFMessage type
    tf_topics: frozenset[str]
    #: the pose-type topics the construction pass reads (pose candidates and odometry)
    pose_topics: frozenset[str]

    @property
    def index_topics(self) -> frozenset[str]:
        """Everything the construction pass reads: tf, pose topics and camera info."""
        camera_info = {self.camera_info_topic} if self.camera_info_topic else set()
        return self.tf_topics | self.pose_topics | camera_info

    def stream(self, *, image: bool, points: bool) -> StreamPlan:
        """The topics of a streaming pass that wants ``image`` and / or ``points``."""
        want_image = image and self.image_topic is not None
        want_points = points and self.points_topic is not None
        if self.anchor == "lidar":
            anchor, partner = self.points_topic, self.image_topic if want_image else None
        else:
            anchor, partner = self.image_topic, self.points_topic if want_points else None
        assert anchor is not None  # plan_bag_read checked the anchor has a topic
        return StreamPlan(anchor, partner, want_image, want_points)


@dataclass(frozen=True)
class PoseSourceChoice:
    """Where ``Frame.pose`` comes from: ``source`` "tf", "topic" or "none"."""

    source: Literal["tf", "topic", "none"]
    #: the pose topic (source "topic" only)
    topic: str | None = None


def describe_topics(topics: Mapping[str, str]) -> str:
    """ "/a (type), /b (type)" for error messages; "none" when empty."""
    return ", ".join(f"{t} ({ty})" for t, ty in sorted(topics.items())) or "none"


def pick_topic(
    topic_types: Mapping[str, str],
    wanted: str | None,
    types: frozenset[str],
    preferred: tuple[str, ...],
    what: str,
    option: str,
    where: Where,
) -> str | None:
    """The topic of one of ``types``: ``wanted`` (checked), else the first ``preferred`` one
    present, else the only candidate, else None; several candidates are an error."""
    candidates = {t: ty for t, ty in topic_types.items() if ty in types}
    if wanted is not None:
        if wanted not in topic_types:
            raise DatasetError(
                f"{where}: no topic {wanted!r} ({option}); {what} topics in the bag: "
                f"{describe_topics(candidates) if candidates else 'none'}; all topics: "
                f"{describe_topics(topic_types)}"
            )
        if topic_types[wanted] not in types:
            raise DatasetError(
                f"{where}: topic {wanted!r} ({option}) is {topic_types[wanted]}, "
                f"not {' or '.join(sorted(types))}; {what} topics: "
                f"{describe_topics(candidates) if candidates else 'none'}"
            )
        return wanted
    for topic in preferred:
        if topic in candidates:
            return topic
    if len(candidates) == 1:
        return next(iter(candidates))
    if len(candidates) > 1:
        raise DatasetError(
            f"{where}: several {what} topics, choose one with {option}=...: "
            f"{describe_topics(candidates)}"
        )
    return None


def plan_bag_read(
    topic_types: Mapping[str, str], cfg: BagReaderConfig, where: Where
) -> BagReadPlan:
    """The plan for a bag with these topics (``where`` names the bag in errors)."""
    image_topic = pick_topic(
        topic_types,
        cfg.image_topic,
        IMAGE_TYPES,
        DEFAULT_IMAGE_TOPICS,
        "image",
        "image_topic",
        where,
    )
    points_topic = pick_topic(
        topic_types,
        cfg.points_topic,
        CLOUD_TYPES,
        DEFAULT_POINTS_TOPICS,
        "point cloud",
        "points_topic",
        where,
    )
    if image_topic is None and points_topic is None:
        raise DatasetError(
            f"{where}: no Image, CompressedImage or PointCloud2 topic; topics: "
            f"{describe_topics(topic_types)}"
        )
    if cfg.anchor == "auto":
        anchor: Literal["lidar", "camera"] = "lidar" if points_topic is not None else "camera"
    else:
        anchor = "lidar" if cfg.anchor == "lidar" else "camera"
    if anchor == "lidar" and points_topic is None:
        raise DatasetError(
            f"{where}: anchor='lidar' needs a PointCloud2 topic; topics: "
            f"{describe_topics(topic_types)}"
        )
    if anchor == "camera" and image_topic is None:
        raise DatasetError(
            f"{where}: anchor='camera' needs an Image or CompressedImage topic; "
            f"topics: {describe_topics(topic_types)}"
        )
    tf_topics = frozenset(
        t for t in (cfg.tf_topic, cfg.tf_static_topic) if topic_types.get(t) in TF_TYPES
    )
    return BagReadPlan(
        image_topic=image_topic,
        image_type=topic_types.get(image_topic or "", None),
        points_topic=points_topic,
        anchor=anchor,
        camera_info_topic=_camera_info_topic(topic_types, cfg, image_topic, where),
        tf_topics=tf_topics,
        pose_topics=frozenset(pose_topics_to_read(cfg, dict(topic_types))),
    )


def _camera_info_topic(
    topic_types: Mapping[str, str], cfg: BagReaderConfig, image_topic: str | None, where: Where
) -> str | None:
    """The configured CameraInfo topic, else the only one, else the image topic's sibling."""
    if cfg.camera_info_topic is not None:
        return pick_topic(
            topic_types,
            cfg.camera_info_topic,
            CAMERA_INFO_TYPES,
            (),
            "camera info",
            "camera_info_topic",
            where,
        )
    candidates = [t for t, ty in topic_types.items() if ty in CAMERA_INFO_TYPES]
    if len(candidates) == 1:
        return candidates[0]
    if image_topic is not None:
        base = image_topic.removesuffix("/compressed").rsplit("/", 1)[0]
        if f"{base}/camera_info" in candidates:
            return f"{base}/camera_info"
    return None


def choose_pose_source(
    topic_types: Mapping[str, str],
    cfg: BagReaderConfig,
    *,
    lidar_frame: str | None,
    drifting: bool,
    where: Where,
) -> PoseSourceChoice:
    """Where the poses come from, for ``cfg.pose_source`` (see
    :attr:`BagReaderConfig.pose_source`). ``drifting``: the LiDAR's tf tree hangs from the
    odometry frame, so a pose topic other than the odometry is the better truth."""
    pose_candidates = {t: ty for t, ty in topic_types.items() if ty in POSE_TYPES}
    # the odometry topic is no ground truth where another pose topic exists
    odom_topic = odometry_topic(cfg.odom_topic, dict(topic_types))
    pose_candidates = truth_candidates(pose_candidates, odom_topic)
    has_tf = topic_types.get(cfg.tf_topic) in TF_TYPES
    prefer_topic = drifting and any(t != odom_topic for t in pose_candidates)
    mode: str = cfg.pose_source  # a PoseSource, then the mode "auto" resolves to
    if mode == "tf" and drifting:
        log.warning(
            "%s: pose_source='tf': the LiDAR's tf tree hangs from the odometry frame %r, "
            "so the poses drift (a ground-truth pose topic: pose_source='topic')",
            where,
            cfg.odom_frame,
        )
    if mode == "auto":
        if cfg.pose_topic is not None:
            mode = "topic"
        elif has_tf and lidar_frame is not None and not prefer_topic:
            mode = "tf"
        elif len(pose_candidates) == 1:
            mode = "topic"
        elif len(pose_candidates) > 1:
            raise DatasetError(
                f"{where}: several pose topics, choose one with pose_topic=... "
                f"(or pose_source='tf'): {describe_topics(pose_candidates)}"
            )
        else:
            reason = (
                "the LiDAR frame is unknown (no point cloud; set lidar_frame)"
                if has_tf
                else f"no {cfg.tf_topic} and no pose topic"
            )
            log.warning("%s: %s, so frames carry no pose", where, reason)
            return PoseSourceChoice("none")
    if mode == "tf":
        if not has_tf:
            raise DatasetError(
                f"{where}: pose_source='tf' but there is no {cfg.tf_topic} topic of "
                f"type TFMessage; topics: {describe_topics(topic_types)}"
            )
        if lidar_frame is None:
            raise DatasetError(
                f"{where}: pose_source='tf' needs the LiDAR frame; the bag has no "
                "point cloud with a frame_id, set lidar_frame"
            )
        return PoseSourceChoice("tf")
    if mode == "topic":
        preferred = tuple(pose_candidates) if len(pose_candidates) == 1 else ()
        topic = pick_topic(
            topic_types, cfg.pose_topic, POSE_TYPES, preferred, "pose", "pose_topic", where
        )
        if topic is None:
            raise DatasetError(
                f"{where}: pose_source='topic' but no Odometry, PoseStamped or "
                f"PoseWithCovarianceStamped topic; topics: {describe_topics(topic_types)}"
            )
        return PoseSourceChoice("topic", topic)
    return PoseSourceChoice("none")
