"""ROS 1 and ROS 2 bags as a streaming :class:`~liploc_ros.datasets.base.FrameSource`.

Read with ``rosbags``' AnyReader (no ROS install needed): ROS 1 ``.bag`` files, ROS 2 bag
directories (sqlite3 or mcap), and bare ``.mcap`` files without metadata.yaml (kitti2mcap's
output) or folders of them. Construction makes one cheap pass over the pose topics (/tf,
/tf_static, odometry, camera_info); :meth:`RosbagSource.iter_frames` then streams the sensor
topics once, holding only a few seconds of messages.

- Frames are anchored on LiDAR scans, each paired with the nearest camera image within
  ``tolerance`` seconds; or on images (``anchor="camera"``, or when the bag has no point
  cloud), each paired with the nearest scan. A frame whose partner is missing is dropped;
  a modality the bag has no topic for is ``None`` in every frame (logged once).
- ``Frame.pose`` is ``T_map_lidar`` at the anchor's header stamp, interpolated (SLERP +
  linear) from either the tf chain map -> ... -> LiDAR frame (the cloud's header.frame_id),
  /tf and /tf_static combined, or a pose topic (nav_msgs/Odometry, PoseStamped,
  PoseWithCovarianceStamped) composed with the tf from the pose's frame to the LiDAR frame.
  Frames outside the poses' time span are dropped. ``pose_source="auto"`` never takes the
  drifting odometry tree (tf rooted at ``odom_frame``) when the bag has a ground-truth pose
  topic besides the odometry topic (a ``liploc synth`` bag: ``/ground_truth/odom``).
- ``Frame.odometry`` is ``T_odom_lidar`` at the same stamp, from the tf chain odom -> LiDAR or
  a nav_msgs/Odometry topic (``odometry_source``, :mod:`~liploc_ros.datasets.rosbag_odometry`);
  ``None`` without odometry (a supported case) or outside its coverage (the frame is kept).
- A message that cannot be deserialised or decoded is skipped with a warning naming topic and
  stamp (``strict=True``: a :class:`DatasetError` instead); a topic whose layout we cannot
  read at all (unsupported encoding, cloud without x/y/z, big-endian) always raises.
- Every drop is counted in :attr:`RosbagSource.stats` and summarised in the log.

Topic defaults follow kitti2bag (/kitti/velo/pointcloud, /kitti/camera_color_left/image_raw,
/tf) and kitti2mcap (/kitti/velodyne_points); otherwise a topic is found by type when exactly
one topic has it. An explicit topic that is missing, or an ambiguous choice, is an error that
lists the candidates.

The work is split by job: ``rosbag_config`` (the options), ``rosbag_plan`` (which topics,
from the topic types and the options alone), ``rosbag_index`` (the construction pass),
``rosbag_poses`` and ``rosbag_odometry`` (the pose tracks), ``rosbag_pairing`` (scans with
images) and ``rosbag_messages`` (bag access); this module streams the frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.config import from_dict, to_dict
from liploc_ros.datasets.bag_paths import bag_reader_paths
from liploc_ros.datasets.base import Calibration, Frame, FrameSource
from liploc_ros.datasets.images import CorruptImageError, compressed_to_rgb, raw_to_rgb
from liploc_ros.datasets.pointcloud import CorruptCloudError, cloud_to_xyzi
from liploc_ros.datasets.rosbag_config import BagReaderConfig
from liploc_ros.datasets.rosbag_index import camera_calibration, lidar_frame_of, read_index_topics
from liploc_ros.datasets.rosbag_messages import (
    MessageProblems,
    connections,
    deserialized,
    header_stamp,
    open_reader,
    topic_types,
)
from liploc_ros.datasets.rosbag_odometry import (
    BagOdometry,
    bag_custom_data,
    choose_odometry,
    odometry_rooted,
)
from liploc_ros.datasets.rosbag_pairing import pair_by_stamp
from liploc_ros.datasets.rosbag_plan import (
    BagReadPlan,
    StreamPlan,
    choose_pose_source,
    plan_bag_read,
)
from liploc_ros.datasets.rosbag_poses import BagPoses, bag_poses
from liploc_ros.errors import DatasetError, LiplocError

__all__ = ["BagReadStats", "BagReaderConfig", "RosbagSource", "bag_topics"]

log = logging.getLogger(__name__)


@dataclass
class BagReadStats:
    """What one pass of :meth:`RosbagSource.iter_frames` yielded and dropped."""

    #: anchor messages (scans or images) read
    anchors: int = 0
    #: frames yielded
    frames: int = 0
    #: anchors dropped: stamp outside the poses' coverage
    no_pose: int = 0
    #: anchors dropped: no partner message within the tolerance
    no_match: int = 0
    #: scans dropped: no finite point
    empty_cloud: int = 0
    #: frames yielded without odometry although the bag has some (outside its coverage)
    no_odometry: int = 0
    #: messages skipped as undeserialisable or undecodable, per topic (the pose topics' count
    #: comes from the construction pass)
    corrupt: dict[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.no_pose + self.no_match + self.empty_cloud + sum(self.corrupt.values())


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic -> message type of a bag (for discovery and error messages)."""
    bag_path = Path(path)
    with open_reader(bag_reader_paths(bag_path), bag_path) as reader:
        return topic_types(reader)


class RosbagSource(FrameSource):
    """A ROS 1 or ROS 2 bag as a stream of :class:`Frame` s (see the module docstring).

    Options are :class:`BagReaderConfig` fields, given as ``config`` and/or keywords
    (keywords win); unknown options are a :class:`ConfigError`.
    """

    def __init__(
        self, path: str | Path, config: BagReaderConfig | None = None, **options: Any
    ) -> None:
        base = to_dict(config) if config is not None else {}
        self.config: BagReaderConfig = from_dict(BagReaderConfig, {**base, **options})
        self.path = Path(path).expanduser()
        self._paths = bag_reader_paths(self.path)
        self.name = f"bag:{self.path}"
        self.calibration: Calibration | None = None
        self.stats = BagReadStats()
        self._index_corrupt: dict[str, int] = {}
        self._problems = MessageProblems(self.path, strict=self.config.strict)
        #: where Frame.pose comes from (``.source``: tf, topic or none)
        self.pose_track = BagPoses()
        #: where Frame.odometry comes from (``.source``: tf, topic or none)
        self.odometry_track = BagOdometry()
        self._index()

    # ------------------------------------------------------------------ construction pass
    def _index(self) -> None:
        """Plan the read, then one pass over tf, poses and camera info; sets the tracks."""
        cfg = self.config
        problems, counts = self._problems, self._index_corrupt
        with open_reader(self._paths, self.path) as reader:
            self.topic_types: dict[str, str] = topic_types(reader)
            self.plan: BagReadPlan = plan_bag_read(self.topic_types, cfg, self.path)
            self.lidar_frame = lidar_frame_of(reader, self.plan, cfg, problems, counts)
            index = read_index_topics(reader, self.plan, cfg, problems, counts)
            custom = bag_custom_data(reader)
        choice = choose_pose_source(
            self.topic_types,
            cfg,
            lidar_frame=self.lidar_frame,
            drifting=odometry_rooted(index.tf, self.lidar_frame, cfg.odom_frame),
            where=self.path,
        )
        self.pose_track = bag_poses(
            self.path, cfg, choice, index.tf, index.samples, self.lidar_frame
        )
        self.calibration = camera_calibration(
            self.path, index.tf, index.camera_info, self.lidar_frame
        )
        self.odometry_track = choose_odometry(
            self.path,
            cfg,
            topic_types=self.topic_types,
            tf=index.tf,
            samples=index.samples,
            lidar=self.lidar_frame,
            pose_topic=self.pose_topic,
            custom=custom,
        )
        log.info(
            "%s: anchor %s, image %s, points %s, poses %s%s, odometry %s",
            self.path,
            self.anchor,
            self.image_topic,
            self.points_topic,
            self.pose_source,
            f" ({self.map_frame} -> {self.lidar_frame}, {self.pose_span[0]:.3f}.."
            f"{self.pose_span[1]:.3f} s)"
            if self.pose_span
            else "",
            self.odometry_track.describe(self.lidar_frame),
        )

    # ------------------------------------------------------------------ what was chosen
    @property
    def image_topic(self) -> str | None:
        return self.plan.image_topic

    @property
    def image_type(self) -> str | None:
        return self.plan.image_type

    @property
    def points_topic(self) -> str | None:
        return self.plan.points_topic

    @property
    def camera_info_topic(self) -> str | None:
        return self.plan.camera_info_topic

    @property
    def anchor(self) -> str:
        """One frame per scan ("lidar") or per image ("camera")."""
        return self.plan.anchor

    @property
    def pose_source(self) -> str:
        """Where the poses come from: "tf", "topic" or "none"."""
        return self.pose_track.source

    @property
    def pose_topic(self) -> str | None:
        return self.pose_track.topic

    @property
    def map_frame(self) -> str | None:
        return self.pose_track.map_frame

    @property
    def pose_span(self) -> tuple[float, float] | None:
        return self.pose_track.span

    # ------------------------------------------------------------------ streaming pass
    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        """Stream the bag's frames; :attr:`stats` counts what this pass dropped."""
        cfg = self.config
        stats = self.stats = BagReadStats(corrupt=dict(self._index_corrupt))
        self._problems.reset()
        stream = self.plan.stream(image=image, points=points)
        if image and self.image_topic is None:
            log.warning("%s: no image topic; frames carry no image", self.path)
        if points and self.points_topic is None:
            log.warning("%s: no point cloud topic; frames carry no points", self.path)
        anchor_topic, partner = stream.anchor_topic, stream.partner_topic
        with open_reader(self._paths, self.path) as reader:
            selected = connections(reader, {t for t in (anchor_topic, partner) if t is not None})
            messages = (
                (topic, header_stamp(msg.header.stamp, ns), msg)
                for topic, ns, msg in deserialized(reader, selected, stats.corrupt, self._problems)
            )
            pairs = pair_by_stamp(messages, anchor_topic, partner, cfg.tolerance, cfg.sync_window)
            for stamp, anchor_msg, partner_item in pairs:
                stats.anchors += 1
                messages_at = {anchor_topic: (stamp, anchor_msg)}
                if partner is not None:
                    if partner_item is None:
                        pose_ok = (
                            self.pose_track.fn is None or self.pose_track.fn(stamp) is not None
                        )
                        # a frame without pose counts as that, whether paired or not
                        if pose_ok:
                            stats.no_match += 1
                        else:
                            stats.no_pose += 1
                        continue
                    messages_at[partner] = partner_item
                frame = self._build_frame(stamp, messages_at, stream)
                if frame is not None:
                    yield frame
                    stats.frames += 1
        self._log_summary(stats)

    def _build_frame(
        self, stamp: float, messages_at: dict[str, tuple[float, Any]], stream: StreamPlan
    ) -> Frame | None:
        """The frame at an anchor stamp, or None when it is dropped (and counted)."""
        stats = self.stats
        pose = None
        if self.pose_track.fn is not None:
            pose = self.pose_track.fn(stamp)
            if pose is None:
                stats.no_pose += 1
                return None
        image = points = None
        meta: dict[str, Any] = {"anchor": self.anchor}
        try:
            if stream.want_image:
                meta["image_stamp"], image_msg = messages_at[self.image_topic or ""]
                image = self._decode_image(image_msg, meta["image_stamp"])
            if stream.want_points:
                meta["points_stamp"], cloud_msg = messages_at[self.points_topic or ""]
                points = self._decode_points(cloud_msg, meta["points_stamp"])
        except _DroppedFrameError:
            return None
        odometry = self.odometry_track.at(stamp)
        if odometry is not None:
            meta["odometry"] = self.odometry_track.label
        elif self.odometry_track.source != "none":
            stats.no_odometry += 1
        if points is not None and points.shape[0] == 0:
            stats.empty_cloud += 1
            self._problems.warn(
                self.points_topic or "",
                f"{self.path}: {self.points_topic} at {meta['points_stamp']:.9f} s has no "
                "finite point; frame dropped",
            )
            return None
        return Frame(
            index=stats.frames,
            stamp=stamp,
            image=image,
            points=points,
            pose=pose,
            meta=meta,
            odometry=odometry,
        )

    def _decode_image(self, msg: Any, stamp: float) -> np.ndarray:
        topic = self.image_topic or ""
        try:
            if self.image_type == "sensor_msgs/msg/CompressedImage":
                return compressed_to_rgb(msg.data, msg.format)
            return raw_to_rgb(
                msg.encoding,
                msg.height,
                msg.width,
                msg.step,
                msg.data,
                is_bigendian=bool(msg.is_bigendian),
            )
        except CorruptImageError as err:
            self._problems.corrupt(topic, stamp, err, self.stats.corrupt)
            raise _DroppedFrameError from err
        except LiplocError as err:
            raise DatasetError(f"{self.path}: {topic} at {stamp:.9f} s: {err}") from err

    def _decode_points(self, msg: Any, stamp: float) -> np.ndarray:
        topic = self.points_topic or ""
        try:
            return cloud_to_xyzi(
                msg.fields,
                msg.height,
                msg.width,
                msg.point_step,
                msg.row_step,
                msg.data,
                is_bigendian=bool(msg.is_bigendian),
            )
        except CorruptCloudError as err:
            self._problems.corrupt(topic, stamp, err, self.stats.corrupt)
            raise _DroppedFrameError from err
        except LiplocError as err:
            raise DatasetError(f"{self.path}: {topic} at {stamp:.9f} s: {err}") from err

    def _log_summary(self, stats: BagReadStats) -> None:
        level = logging.WARNING if stats.dropped else logging.INFO
        corrupt = ", ".join(f"{t}: {n}" for t, n in sorted(stats.corrupt.items())) or "none"
        span = f"{self.pose_span[0]:.3f}..{self.pose_span[1]:.3f} s" if self.pose_span else "n/a"
        log.log(
            level,
            "%s: %d frames from %d %s; dropped %d outside the pose coverage (%s), %d without "
            "a partner within %.3f s, %d empty clouds; corrupt messages skipped: %s; "
            "odometry: %s",
            self.path,
            stats.frames,
            stats.anchors,
            "scans" if self.anchor == "lidar" else "images",
            stats.no_pose,
            span,
            stats.no_match,
            self.config.tolerance,
            stats.empty_cloud,
            corrupt,
            self.odometry_track.describe(self.lidar_frame)
            + (f" ({stats.no_odometry} frames without)" if stats.no_odometry else "")
            if self.odometry_track.source != "none"
            else "none (frames carry odometry None)",
        )


class _DroppedFrameError(Exception):
    """Internal: the current frame is dropped (already counted)."""
