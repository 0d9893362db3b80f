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
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from liploc_ros.config import from_dict, to_dict
from liploc_ros.datasets.bag_paths import bag_reader_paths
from liploc_ros.datasets.base import Calibration, Frame, FrameSource
from liploc_ros.datasets.images import CorruptImageError, compressed_to_rgb, raw_to_rgb
from liploc_ros.datasets.interpolation import PoseTrack, make_transform
from liploc_ros.datasets.pointcloud import CorruptCloudError, cloud_to_xyzi
from liploc_ros.datasets.rosbag_odometry import (
    POSE_TYPES,
    BagOdometry,
    bag_custom_data,
    choose_odometry,
    odometry_rooted,
    odometry_topic,
    pose_topics_to_read,
    truth_candidates,
)
from liploc_ros.datasets.tf_tree import TfTree, normalize_frame
from liploc_ros.errors import ConfigError, DatasetError, LiplocError

__all__ = ["BagReadStats", "BagReaderConfig", "RosbagSource", "bag_topics"]

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

#: corrupt messages logged one by one per topic before the rest are only counted
_MAX_CORRUPT_WARNINGS = 10


@dataclass(frozen=True)
class BagReaderConfig:
    """How to read a bag; every ``None`` is discovered from the bag."""

    #: Image or CompressedImage topic; None: a kitti2bag default, else the only one
    image_topic: str | None = None
    #: PointCloud2 topic; None: a kitti2bag / kitti2mcap default, else the only one
    points_topic: str | None = None
    #: CameraInfo topic for :attr:`RosbagSource.calibration`; None: the only one, or the
    #: image topic's sibling ``camera_info``
    camera_info_topic: str | None = None
    #: "tf": the tf chain map -> LiDAR; "topic": ``pose_topic``; "none": no poses;
    #: "auto": ``pose_topic`` if given, else tf when the bag has ``tf_topic`` and the LiDAR
    #: frame is known, else the only pose topic, else none (logged)
    pose_source: Literal["auto", "tf", "topic", "none"] = "auto"
    #: Odometry / PoseStamped / PoseWithCovarianceStamped topic; None: the only one
    pose_topic: str | None = None
    #: the frame the poses are expressed in; None: the root of the LiDAR frame's tf tree
    #: (tf), or the pose topic's header.frame_id (topic)
    map_frame: str | None = None
    #: None: the first cloud's header.frame_id
    lidar_frame: str | None = None
    #: the frame whose pose ``pose_topic`` gives; None: Odometry's child_frame_id, and for
    #: PoseStamped types the LiDAR frame itself
    pose_frame: str | None = None
    #: "lidar": one frame per scan; "camera": one per image; "auto": lidar if the bag has
    #: a point cloud topic
    anchor: Literal["auto", "lidar", "camera"] = "auto"
    #: largest |image stamp - scan stamp| (s) for a pair
    tolerance: float = 0.05
    #: largest gap (s) between two pose samples to interpolate across; None: no limit
    max_pose_gap: float | None = 1.0
    #: how far (s, in header stamps) a scan and its image may be apart in the bag's order
    sync_window: float = 2.0
    #: raise on the first corrupt message instead of skipping it
    strict: bool = False
    tf_topic: str = "/tf"
    tf_static_topic: str = "/tf_static"
    #: Frame.odometry from "tf" (odom_frame -> LiDAR), "topic" (odom_topic), "none", or
    #: "auto": odom_topic if given, else tf if odom_frame is above the LiDAR, else /odom
    odometry_source: Literal["auto", "tf", "topic", "none"] = "auto"
    #: nav_msgs/Odometry topic of the odometry; None: /odom when the bag has it
    odom_topic: str | None = None
    #: the odometry frame of the tf chain (REP-105)
    odom_frame: str = "odom"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"tolerance must be a finite number >= 0, got {self.tolerance}")
        if self.max_pose_gap is not None and not self.max_pose_gap > 0:
            raise ConfigError(f"max_pose_gap must be > 0 or None, got {self.max_pose_gap}")
        if not (math.isfinite(self.sync_window) and self.sync_window > 0):
            raise ConfigError(f"sync_window must be > 0, got {self.sync_window}")
        if not normalize_frame(self.odom_frame):
            raise ConfigError("odom_frame must not be empty")
        for name in (
            "image_topic",
            "points_topic",
            "camera_info_topic",
            "pose_topic",
            "odom_topic",
        ):
            value = getattr(self, name)
            if value is not None and not value.startswith("/"):
                raise ConfigError(f"{name}: {value!r} must be an absolute topic name ('/...')")


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
    with _open_reader(_bag_paths(bag_path), bag_path) as reader:
        return {name: info.msgtype or "(several types)" for name, info in reader.topics.items()}


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
        self._paths = _bag_paths(self.path)
        self.name = f"bag:{self.path}"
        self.calibration: Calibration | None = None
        self.stats = BagReadStats()
        self._index_corrupt: dict[str, int] = {}
        self._warned: dict[str, int] = {}
        self._pose_fn: Any = None
        self.pose_span: tuple[float, float] | None = None
        #: where Frame.odometry comes from (``.source``: tf, topic or none)
        self.odometry_track = BagOdometry()
        self._index()

    # ------------------------------------------------------------------ construction pass
    def _index(self) -> None:
        cfg = self.config
        with _open_reader(self._paths, self.path) as reader:
            self.topic_types = {
                name: info.msgtype or "(several types)" for name, info in reader.topics.items()
            }
            self.image_topic = self._pick(
                cfg.image_topic, IMAGE_TYPES, DEFAULT_IMAGE_TOPICS, "image", "image_topic"
            )
            self.points_topic = self._pick(
                cfg.points_topic, CLOUD_TYPES, DEFAULT_POINTS_TOPICS, "point cloud", "points_topic"
            )
            if self.image_topic is None and self.points_topic is None:
                raise DatasetError(
                    f"{self.path}: no Image, CompressedImage or PointCloud2 topic; topics: "
                    f"{_describe(self.topic_types)}"
                )
            if cfg.anchor == "auto":
                self.anchor = "lidar" if self.points_topic is not None else "camera"
            else:
                self.anchor = cfg.anchor
            if self.anchor == "lidar" and self.points_topic is None:
                raise DatasetError(
                    f"{self.path}: anchor='lidar' needs a PointCloud2 topic; topics: "
                    f"{_describe(self.topic_types)}"
                )
            if self.anchor == "camera" and self.image_topic is None:
                raise DatasetError(
                    f"{self.path}: anchor='camera' needs an Image or CompressedImage topic; "
                    f"topics: {_describe(self.topic_types)}"
                )
            self.image_type = self.topic_types.get(self.image_topic or "", None)
            self.lidar_frame = self._find_lidar_frame(reader)
            self.camera_info_topic = self._pick_camera_info()
            tf, samples, camera_info = self._read_pose_topics(reader)
            custom = bag_custom_data(reader)
        self._choose_pose_source(tf)
        self._tf = tf
        self._build_pose_fn(tf, samples.get(self.pose_topic or "", []))
        self.calibration = self._calibration(tf, camera_info)
        self.odometry_track = choose_odometry(
            self.path,
            cfg,
            topic_types=self.topic_types,
            tf=tf,
            samples=samples,
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

    def _pick(
        self,
        wanted: str | None,
        types: frozenset[str],
        preferred: tuple[str, ...],
        what: str,
        option: str,
    ) -> str | None:
        candidates = {t: ty for t, ty in self.topic_types.items() if ty in types}
        if wanted is not None:
            if wanted not in self.topic_types:
                raise DatasetError(
                    f"{self.path}: no topic {wanted!r} ({option}); {what} topics in the bag: "
                    f"{_describe(candidates) if candidates else 'none'}; all topics: "
                    f"{_describe(self.topic_types)}"
                )
            if self.topic_types[wanted] not in types:
                raise DatasetError(
                    f"{self.path}: topic {wanted!r} ({option}) is {self.topic_types[wanted]}, "
                    f"not {' or '.join(sorted(types))}; {what} topics: "
                    f"{_describe(candidates) if candidates else 'none'}"
                )
            return wanted
        for topic in preferred:
            if topic in candidates:
                return topic
        if len(candidates) == 1:
            return next(iter(candidates))
        if len(candidates) > 1:
            raise DatasetError(
                f"{self.path}: several {what} topics, choose one with {option}=...: "
                f"{_describe(candidates)}"
            )
        return None

    def _find_lidar_frame(self, reader: Any) -> str | None:
        if self.config.lidar_frame is not None:
            return normalize_frame(self.config.lidar_frame)
        if self.points_topic is None:
            return None
        connections = self._connections(reader, [self.points_topic])
        for conn, ns, raw in reader.messages(connections=connections):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as err:  # any failure of a corrupt buffer: try the next one
                self._corrupt(conn.topic, ns * 1e-9, err, self._index_corrupt)
                continue
            frame = normalize_frame(msg.header.frame_id)
            if frame:
                return frame
            break
        return None

    def _choose_pose_source(self, tf: TfTree) -> None:
        cfg = self.config
        pose_candidates = {t: ty for t, ty in self.topic_types.items() if ty in POSE_TYPES}
        # the odometry topic is no ground truth where another pose topic exists
        odom_topic = odometry_topic(cfg.odom_topic, self.topic_types)
        pose_candidates = truth_candidates(pose_candidates, odom_topic)
        has_tf = self.topic_types.get(cfg.tf_topic) in TF_TYPES
        # tf rooted at odom is the drifting odometry: a pose topic is the better truth
        drifting = odometry_rooted(tf, self.lidar_frame, cfg.odom_frame)
        prefer_topic = drifting and any(t != odom_topic for t in pose_candidates)
        self.pose_topic: str | None = None
        mode = cfg.pose_source
        if mode == "tf" and drifting:
            log.warning(
                "%s: pose_source='tf': the LiDAR's tf tree hangs from the odometry frame %r, "
                "so the poses drift (a ground-truth pose topic: pose_source='topic')",
                self.path,
                cfg.odom_frame,
            )
        if mode == "auto":
            if cfg.pose_topic is not None:
                mode = "topic"
            elif has_tf and self.lidar_frame is not None and not prefer_topic:
                mode = "tf"
            elif len(pose_candidates) == 1:
                mode = "topic"
            elif len(pose_candidates) > 1:
                raise DatasetError(
                    f"{self.path}: several pose topics, choose one with pose_topic=... "
                    f"(or pose_source='tf'): {_describe(pose_candidates)}"
                )
            else:
                mode = "none"
                reason = (
                    "the LiDAR frame is unknown (no point cloud; set lidar_frame)"
                    if has_tf
                    else f"no {cfg.tf_topic} and no pose topic"
                )
                log.warning("%s: %s, so frames carry no pose", self.path, reason)
        if mode == "tf":
            if not has_tf:
                raise DatasetError(
                    f"{self.path}: pose_source='tf' but there is no {cfg.tf_topic} topic of "
                    f"type TFMessage; topics: {_describe(self.topic_types)}"
                )
            if self.lidar_frame is None:
                raise DatasetError(
                    f"{self.path}: pose_source='tf' needs the LiDAR frame; the bag has no "
                    "point cloud with a frame_id, set lidar_frame"
                )
        if mode == "topic":
            preferred = tuple(pose_candidates) if len(pose_candidates) == 1 else ()
            self.pose_topic = self._pick(
                cfg.pose_topic, POSE_TYPES, preferred, "pose", "pose_topic"
            )
            if self.pose_topic is None:
                raise DatasetError(
                    f"{self.path}: pose_source='topic' but no Odometry, PoseStamped or "
                    f"PoseWithCovarianceStamped topic; topics: {_describe(self.topic_types)}"
                )
        self.pose_source: str = mode

    def _pick_camera_info(self) -> str | None:
        cfg = self.config
        if cfg.camera_info_topic is not None:
            return self._pick(
                cfg.camera_info_topic, CAMERA_INFO_TYPES, (), "camera info", "camera_info_topic"
            )
        candidates = [t for t, ty in self.topic_types.items() if ty in CAMERA_INFO_TYPES]
        if len(candidates) == 1:
            return candidates[0]
        if self.image_topic is not None:
            base = self.image_topic.removesuffix("/compressed").rsplit("/", 1)[0]
            if f"{base}/camera_info" in candidates:
                return f"{base}/camera_info"
        return None

    def _read_pose_topics(self, reader: Any) -> tuple[TfTree, dict[str, list], Any]:
        """One pass over /tf, /tf_static, the pose topics that may be used and camera info."""
        cfg = self.config
        tf = TfTree(max_gap=cfg.max_pose_gap)
        tf_topics = {
            t for t in (cfg.tf_topic, cfg.tf_static_topic) if self.topic_types.get(t) in TF_TYPES
        }
        pose_topics = pose_topics_to_read(cfg, self.topic_types)
        wanted = tf_topics | pose_topics
        if self.camera_info_topic:
            wanted.add(self.camera_info_topic)
        pose_samples: dict[str, list[tuple[float, str, str, np.ndarray]]] = {}
        camera_info = None
        connections = self._connections(reader, wanted)
        if not connections:
            return tf, pose_samples, camera_info
        for topic, ns, msg in self._deserialized(reader, connections, self._index_corrupt):
            if topic in tf_topics:
                static = topic == cfg.tf_static_topic
                for tr in msg.transforms:
                    tr_t, rot = tr.transform.translation, tr.transform.rotation
                    try:
                        tf.add(
                            tr.header.frame_id,
                            tr.child_frame_id,
                            _stamp(tr.header.stamp, ns),
                            (tr_t.x, tr_t.y, tr_t.z),
                            (rot.x, rot.y, rot.z, rot.w),
                            static=static,
                        )
                    except DatasetError as err:
                        self._corrupt(topic, ns * 1e-9, err, self._index_corrupt)
            elif topic in pose_topics:
                pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
                child = getattr(msg, "child_frame_id", "")
                p, q = pose.position, pose.orientation
                try:
                    T = make_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
                except DatasetError as err:
                    self._corrupt(topic, ns * 1e-9, err, self._index_corrupt)
                    continue
                pose_samples.setdefault(topic, []).append(
                    (
                        _stamp(msg.header.stamp, ns),
                        normalize_frame(msg.header.frame_id),
                        normalize_frame(child),
                        T,
                    )
                )
            elif camera_info is None:
                camera_info = msg
        return tf, pose_samples, camera_info

    def _build_pose_fn(self, tf: TfTree, samples: list) -> None:
        cfg = self.config
        if self.pose_source == "tf":
            lidar = self.lidar_frame
            assert lidar is not None
            if lidar not in tf:
                raise DatasetError(
                    f"{self.path}: the LiDAR frame {lidar!r} is not in the tf tree; "
                    f"transforms: {tf.describe()}"
                )
            self.map_frame = normalize_frame(cfg.map_frame) if cfg.map_frame else tf.root(lidar)
            if self.map_frame == lidar:
                raise DatasetError(
                    f"{self.path}: the LiDAR frame {lidar!r} is the root of its tf tree, there "
                    f"is no map frame above it; transforms: {tf.describe()}"
                )
            map_frame = self.map_frame

            def pose_fn(t: float) -> np.ndarray | None:
                T, ok = tf.lookup(map_frame, lidar, t)
                return T[0] if ok[0] else None

            tf.lookup(map_frame, lidar, 0.0)  # raises now if there is no path at all
            self._pose_fn = pose_fn
            self.pose_span = self._tf_span(tf, map_frame, lidar)
        elif self.pose_source == "topic":
            self._build_topic_pose_fn(tf, samples)
        else:
            self.map_frame = cfg.map_frame

    def _build_topic_pose_fn(self, tf: TfTree, samples: list) -> None:
        cfg = self.config
        if not samples:
            raise DatasetError(
                f"{self.path}: pose topic {self.pose_topic} has no readable message"
            )
        parents = {s[1] for s in samples}
        if len(parents) > 1:
            raise DatasetError(
                f"{self.path}: pose topic {self.pose_topic} mixes frames {sorted(parents)}"
            )
        parent = parents.pop()
        if cfg.map_frame is not None and normalize_frame(cfg.map_frame) != parent:
            raise DatasetError(
                f"{self.path}: pose topic {self.pose_topic} gives poses in {parent!r}, not in "
                f"map_frame {cfg.map_frame!r}"
            )
        self.map_frame = parent or cfg.map_frame
        children = {s[2] for s in samples}
        body = normalize_frame(cfg.pose_frame) if cfg.pose_frame else None
        if body is None:
            body = children.pop() if len(children) == 1 else ""
        lidar = self.lidar_frame
        track = PoseTrack(
            np.array([s[0] for s in samples]),
            np.stack([s[3] for s in samples]),
            max_gap=cfg.max_pose_gap,
        )
        self.pose_span = (track.start, track.end)
        if not body or lidar is None or body == lidar:
            if body and lidar is None:
                log.info("%s: no LiDAR frame known; poses are those of %r", self.path, body)
            self._pose_fn = track.at
            return
        try:
            tf.lookup(body, lidar, 0.0)
        except DatasetError as err:
            raise DatasetError(
                f"{self.path}: pose topic {self.pose_topic} gives the pose of {body!r}, but tf "
                f"has no transform from it to the LiDAR frame {lidar!r} (set pose_frame if the "
                f"poses are the LiDAR's); transforms: {tf.describe()}"
            ) from err
        static = tf.is_static_path(body, lidar)
        T_fixed = tf.lookup(body, lidar, 0.0)[0][0] if static else None

        def pose_fn(t: float) -> np.ndarray | None:
            T_map_body = track.at(t)
            if T_map_body is None:
                return None
            if T_fixed is not None:
                return T_map_body @ T_fixed
            T, ok = tf.lookup(body, lidar, t)
            return T_map_body @ T[0] if ok[0] else None

        self._pose_fn = pose_fn

    @staticmethod
    def _tf_span(tf: TfTree, target: str, source: str) -> tuple[float, float] | None:
        spans = [tf.edge_span(child) for child in tf.path_edges(target, source)]
        spans = [s for s in spans if s is not None]
        if not spans:
            return None
        return max(s[0] for s in spans), min(s[1] for s in spans)

    def _calibration(self, tf: TfTree, info: Any) -> Calibration | None:
        if info is None:
            return None
        K = np.asarray(info.k if hasattr(info, "k") else info.K, np.float64)  # ROS 2 / ROS 1
        camera = normalize_frame(info.header.frame_id)
        if K.size != 9 or not np.any(K) or self.lidar_frame is None or not camera:
            return None
        try:
            if not tf.is_static_path(self.lidar_frame, camera):
                return None
            T_lidar_camera = tf.lookup(self.lidar_frame, camera, 0.0)[0][0]
        except DatasetError:
            log.info(
                "%s: no static tf %s -> %s; no calibration", self.path, self.lidar_frame, camera
            )
            return None
        return Calibration(
            camera_matrix=K.reshape(3, 3).copy(),
            image_size=(int(info.width), int(info.height)),
            T_lidar_camera=T_lidar_camera,
        )

    # ------------------------------------------------------------------ streaming pass
    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        """Stream the bag's frames; :attr:`stats` counts what this pass dropped."""
        cfg = self.config
        stats = self.stats = BagReadStats(corrupt=dict(self._index_corrupt))
        self._warned = {}
        want_image = image and self.image_topic is not None
        want_points = points and self.points_topic is not None
        if image and self.image_topic is None:
            log.warning("%s: no image topic; frames carry no image", self.path)
        if points and self.points_topic is None:
            log.warning("%s: no point cloud topic; frames carry no points", self.path)
        if self.anchor == "lidar":
            anchor_topic, partner = self.points_topic, self.image_topic if want_image else None
        else:
            anchor_topic, partner = self.image_topic, self.points_topic if want_points else None
        assert anchor_topic is not None
        with _open_reader(self._paths, self.path) as reader:
            connections = self._connections(reader, {anchor_topic, partner} - {None})
            messages = (
                (topic, _stamp(msg.header.stamp, ns), msg)
                for topic, ns, msg in self._deserialized(reader, connections, stats.corrupt)
            )
            pairs = _pair_by_stamp(messages, anchor_topic, partner, cfg.tolerance, cfg.sync_window)
            for stamp, anchor_msg, partner_item in pairs:
                stats.anchors += 1
                messages_at = {anchor_topic: (stamp, anchor_msg)}
                if partner is not None:
                    if partner_item is None:
                        pose_ok = self._pose_fn is None or self._pose_fn(stamp) is not None
                        # a frame without pose counts as that, whether paired or not
                        if pose_ok:
                            stats.no_match += 1
                        else:
                            stats.no_pose += 1
                        continue
                    messages_at[partner] = partner_item
                frame = self._build_frame(stamp, messages_at, want_image, want_points)
                if frame is not None:
                    yield frame
                    stats.frames += 1
        self._log_summary(stats)

    def _build_frame(
        self,
        stamp: float,
        messages_at: dict[str, tuple[float, Any]],
        want_image: bool,
        want_points: bool,
    ) -> Frame | None:
        """The frame at an anchor stamp, or None when it is dropped (and counted)."""
        stats = self.stats
        pose = None
        if self._pose_fn is not None:
            pose = self._pose_fn(stamp)
            if pose is None:
                stats.no_pose += 1
                return None
        image = points = None
        meta: dict[str, Any] = {"anchor": self.anchor}
        try:
            if want_image:
                meta["image_stamp"], image_msg = messages_at[self.image_topic or ""]
                image = self._decode_image(image_msg, meta["image_stamp"])
            if want_points:
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
            self._warn(
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
            self._corrupt(topic, stamp, err, self.stats.corrupt)
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
            self._corrupt(topic, stamp, err, self.stats.corrupt)
            raise _DroppedFrameError from err
        except LiplocError as err:
            raise DatasetError(f"{self.path}: {topic} at {stamp:.9f} s: {err}") from err

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _connections(reader: Any, topics: Iterable[str]) -> list:
        topics = set(topics)
        return [c for c in reader.connections if c.topic in topics]

    def _deserialized(
        self, reader: Any, connections: list, counts: dict[str, int]
    ) -> Iterator[tuple[str, int, Any]]:
        """(topic, bag time ns, message) of the connections, corrupt messages skipped."""
        try:
            for conn, ns, raw in reader.messages(connections=connections):
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as err:  # a corrupt buffer fails in many ways inside rosbags
                    self._corrupt(conn.topic, ns * 1e-9, err, counts)
                    continue
                yield conn.topic, ns, msg
        except LiplocError:
            raise
        except Exception as err:
            raise DatasetError(f"cannot read bag {self.path}: {err}") from err

    def _corrupt(
        self, topic: str, stamp: float, err: BaseException, counts: dict[str, int]
    ) -> None:
        message = f"{self.path}: corrupt message on {topic} at {stamp:.9f} s: {err}"
        if self.config.strict:
            raise DatasetError(message) from err
        counts[topic] = counts.get(topic, 0) + 1
        self._warn(topic, message + " (skipped)")

    def _warn(self, topic: str, message: str) -> None:
        seen = self._warned.get(topic, 0)
        if seen < _MAX_CORRUPT_WARNINGS:
            log.warning("%s", message)
        elif seen == _MAX_CORRUPT_WARNINGS:
            log.warning(
                "%s: further problems on %s are counted without a warning", self.path, topic
            )
        self._warned[topic] = seen + 1

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


def _stamp(time: Any, ns: int) -> float:
    """Header stamp in seconds; an unset (zero) stamp falls back to the bag's record time."""
    sec, nanosec = int(time.sec), int(time.nanosec)
    if sec == 0 and nanosec == 0:
        return ns * 1e-9
    return sec + nanosec * 1e-9


def _pair_by_stamp(
    messages: Iterable[tuple[str, float, Any]],
    anchor_topic: str,
    partner_topic: str | None,
    tolerance: float,
    window: float,
) -> Iterator[tuple[float, Any, tuple[float, Any] | None]]:
    """Pair each anchor message with the partner message nearest in stamp, streaming.

    Yields ``(anchor stamp, anchor msg, (partner stamp, partner msg) or None)`` in anchor
    order. Assumes each topic's stamps rise (as a driver publishes them); an anchor is decided
    once a partner later than its stamp + tolerance arrived, or once the stream moved
    ``window`` seconds past it, so memory holds only that window.
    """
    if partner_topic is None:
        for topic, stamp, msg in messages:
            if topic == anchor_topic:
                yield stamp, msg, None
        return
    pending: deque[tuple[float, Any]] = deque()
    partners: deque[tuple[float, Any]] = deque()
    newest = latest_partner = -math.inf
    last_anchor = -math.inf

    def best(stamp: float) -> tuple[float, Any] | None:
        candidates = [p for p in partners if abs(p[0] - stamp) <= tolerance]
        return min(candidates, key=lambda p: abs(p[0] - stamp)) if candidates else None

    for topic, stamp, msg in messages:
        if topic == anchor_topic:
            pending.append((stamp, msg))
        elif topic == partner_topic:
            partners.append((stamp, msg))
            latest_partner = max(latest_partner, stamp)
        newest = max(newest, stamp)
        while pending and (
            latest_partner > pending[0][0] + tolerance
            or newest > pending[0][0] + tolerance + window
        ):
            a_stamp, a_msg = pending.popleft()
            last_anchor = max(last_anchor, a_stamp)
            yield a_stamp, a_msg, best(a_stamp)
        horizon = max(last_anchor, newest - window) - tolerance
        if pending:
            horizon = min(horizon, pending[0][0] - tolerance)
        while partners and partners[0][0] < horizon:
            partners.popleft()
    while pending:
        a_stamp, a_msg = pending.popleft()
        yield a_stamp, a_msg, best(a_stamp)


def _describe(topics: dict[str, str]) -> str:
    return ", ".join(f"{t} ({ty})" for t, ty in sorted(topics.items())) or "none"


def _bag_paths(path: Path) -> list[Path]:
    """What AnyReader opens: :func:`~liploc_ros.datasets.bag_paths.bag_reader_paths`."""
    return bag_reader_paths(path)


class _open_reader:  # noqa: N801 (used like a function in `with`)
    """AnyReader with its errors turned into :class:`DatasetError` naming the bag."""

    def __init__(self, paths: list[Path], name: Path) -> None:
        self.paths, self.name, self.reader = paths, name, None

    def __enter__(self) -> Any:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        try:
            self.reader = AnyReader(self.paths, default_typestore=get_typestore(Stores.LATEST))
            self.reader.open()
        except Exception as err:
            raise DatasetError(f"cannot open bag {self.name}: {err}") from err
        return self.reader

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None and self.reader.stack is not None:
            self.reader.close()
