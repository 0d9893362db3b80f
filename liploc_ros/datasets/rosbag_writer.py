"""Any :class:`~liploc_ros.datasets.base.FrameSource` -> a ROS 2 bag (mcap or sqlite3).

Written with the pure-Python ``rosbags`` library, so it runs without a ROS install; the bag
plays with ``ros2 bag play`` on Jazzy and newer (rosbag2 metadata version 9).

What a frame becomes (topic names are :class:`BagTopics`, defaults from kitti2bag):

- ``/kitti/camera_color_left/image_raw`` sensor_msgs/Image (rgb8 or bgr8), or with
  ``image_encoding="jpeg"`` sensor_msgs/CompressedImage on ``<image topic>/compressed``
  (the image_transport naming);
- ``/kitti/camera_color_left/camera_info`` sensor_msgs/CameraInfo from the source's calibration
  (no distortion: the sources yield rectified images);
- ``/kitti/velo/pointcloud`` sensor_msgs/PointCloud2, fields x y z intensity float32;
- ``/ground_truth/odom`` nav_msgs/Odometry, the ground truth (header map, child base_link),
  from the frame's ``T_map_lidar`` and the base_link -> LiDAR mount ``T_base_lidar``;
- ``/tf_static`` (latched) base_link -> velo_link (``T_base_lidar``) and velo_link ->
  camera_color_left (``calibration.T_lidar_camera``, the camera optical frame);
- ``/tf``, in one of two layouts, since base_link can have only one parent:

  - the source has odometry (``Frame.odometry``, e.g. the synthetic world's simulated wheel
    odometry) and ``odometry=True``: odom -> base_link from ``Frame.odometry``, and the same
    drifting pose on ``/odom`` nav_msgs/Odometry (header odom, child base_link, twist from
    the motion since the previous frame, in base_link). This is what a robot records, and what
    a localizer that broadcasts map -> odom expects; the truth is only on
    ``/ground_truth/odom``. The bag's metadata says where the odometry came from
    (``custom_data`` ``liploc_ros.odometry``: simulated / recorded, and the error model);
  - no odometry: map -> base_link, the ground truth (the layout of kitti2bag and kitti2mcap).

  The layout is chosen once per bag: from an indexed source's ``odometry``, else from the
  first frame.

Every message of a frame is stamped (header and bag time) with the frame's stamp plus
``time_offset``. The bag is written into a hidden sibling directory and renamed into place
only once complete, so an interrupted run never leaves a half-written bag at ``path``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from liploc_ros.datasets.base import Calibration, Frame, FrameSource, IndexedSource
from liploc_ros.datasets.images import rgb_to_compressed, rgb_to_raw
from liploc_ros.datasets.interpolation import invert_transform, transform_to_quat
from liploc_ros.datasets.pointcloud import xyzi_to_cloud
from liploc_ros.errors import ConfigError, DatasetError, LiplocError

__all__ = ["DEFAULT_T_BASE_LIDAR", "BagTopics", "write_bag"]

log = logging.getLogger(__name__)

#: base_link -> LiDAR mount used when the caller gives none: the KITTI Velodyne HDL-64E sits
#: 1.73 m above the ground, and REP-105's base_link lies on the ground below the vehicle's
#: centre; no rotation (the LiDAR's x forward, y left, z up match base_link's).
DEFAULT_T_BASE_LIDAR: np.ndarray = np.array(
    [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.73], [0, 0, 0, 1.0]]
)
DEFAULT_T_BASE_LIDAR.setflags(write=False)

Storage = Literal["mcap", "sqlite3"]
ImageEncoding = Literal["rgb8", "bgr8", "jpeg"]


@dataclass(frozen=True)
class BagTopics:
    """Topic names and frame ids of a written bag (defaults: kitti2bag's, plus a pose topic)."""

    image: str = "/kitti/camera_color_left/image_raw"
    camera_info: str = "/kitti/camera_color_left/camera_info"
    points: str = "/kitti/velo/pointcloud"
    odometry: str = "/ground_truth/odom"
    #: the drifting odometry (written only when the source has one)
    odom: str = "/odom"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    map_frame: str = "map"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    lidar_frame: str = "velo_link"
    camera_frame: str = "camera_color_left"

    def __post_init__(self) -> None:
        topics = ("image", "camera_info", "points", "odometry", "odom", "tf", "tf_static")
        frames = ("map_frame", "odom_frame", "base_frame", "lidar_frame", "camera_frame")
        for name in topics:
            value = getattr(self, name)
            if not value.startswith("/") or value.endswith("/") or " " in value:
                raise ConfigError(f"topics.{name}: {value!r} is not an absolute topic name")
        for name in frames:
            value = getattr(self, name)
            if not value or value.startswith("/") or " " in value:
                raise ConfigError(f"topics.{name}: {value!r} is not a valid frame id")
        names = [getattr(self, n) for n in topics]
        if len(set(names)) != len(names):
            raise ConfigError(f"topics: the topic names must differ, got {names}")
        ids = [getattr(self, n) for n in frames]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"topics: the frame ids must differ, got {ids}")

    def image_topic(self, image_encoding: str) -> str:
        """The topic images go to: ``<image>/compressed`` for JPEG (image_transport naming)."""
        return f"{self.image}/compressed" if image_encoding == "jpeg" else self.image


def write_bag(
    source: FrameSource,
    path: str | Path,
    *,
    storage: Storage = "mcap",
    image_encoding: ImageEncoding = "rgb8",
    topics: BagTopics | None = None,
    progress: bool = True,
    overwrite: bool = False,
    T_base_lidar: np.ndarray | None = None,
    time_offset: float = 0.0,
    jpeg_quality: int = 95,
    limit: int | None = None,
    odometry: bool = True,
) -> Path:
    """Write ``source``'s frames to a ROS 2 bag directory at ``path``; returns that path.

    ``overwrite=True`` replaces an existing bag (a directory holding metadata.yaml) only after
    the new one is complete; anything else at ``path`` is never deleted. ``limit`` stops after
    that many frames. ``odometry=False`` leaves the source's odometry out (tf then carries the
    truth, map -> base_link). Raises :class:`DatasetError` for a frame the bag cannot hold.
    """
    topics = topics or BagTopics()
    _check_arguments(storage, image_encoding, limit, jpeg_quality)
    mount = _check_transform(
        DEFAULT_T_BASE_LIDAR if T_base_lidar is None else T_base_lidar, "T_base_lidar"
    )

    final = Path(path).expanduser().absolute()
    _check_destination(final, overwrite)
    from rosbags.rosbag2 import StoragePlugin, Writer

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
        )
    except OSError as err:
        raise DatasetError(f"cannot write bag {final}: {err}") from err
    try:
        # the staging bag already has the final name, so its storage file (<name>.mcap) does too
        tmp_bag = staging / final.name
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(tmp_bag, version=9, storage_plugin=plugin) as writer:
            if source.name:
                writer.set_custom_data("liploc_ros.source", str(source.name))
            layout: bool | None = None if odometry else False  # None: the first frame tells
            if odometry and isinstance(source, IndexedSource):
                layout = source.odometry is not None
            emitter = _Emitter(
                writer, topics, image_encoding, source.calibration, mount, odometry=layout
            )
            emitter.jpeg_quality = jpeg_quality
            total = len(source) if isinstance(source, IndexedSource) else None
            if limit is not None:
                total = limit if total is None else min(total, limit)
            stream = source.iter_frames()
            try:
                for frame in tqdm(
                    islice(stream, limit),
                    total=total,
                    disable=not progress,
                    unit="frame",
                    desc=f"writing {final.name}",
                ):
                    emitter.write_frame(frame, time_offset)
            finally:
                if isinstance(stream, Generator):  # release a streaming source's files now
                    stream.close()
            if emitter.frames == 0:
                log.warning("%s: the source yielded no frame; the bag is empty", source.name)
        _install(tmp_bag, final, staging, overwrite)
    except LiplocError:
        raise
    except Exception as err:
        if isinstance(err, OSError) or type(err).__module__.startswith("rosbags"):
            raise DatasetError(f"cannot write bag {final}: {err}") from err
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %d frames to %s", emitter.frames, final)
    return final


def _check_arguments(storage: str, image_encoding: str, limit: int | None, quality: int) -> None:
    if storage not in ("mcap", "sqlite3"):
        raise ConfigError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if image_encoding not in ("rgb8", "bgr8", "jpeg"):
        raise ConfigError(f"image_encoding must be rgb8, bgr8 or jpeg, got {image_encoding!r}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if not 1 <= quality <= 100:
        raise ConfigError(f"jpeg_quality must be in 1..100, got {quality}")


def _check_transform(T: np.ndarray, name: str) -> np.ndarray:
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ConfigError(f"{name} must be a finite 4 x 4 transform, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ConfigError(f"{name} is not a rigid transform:\n{T}")
    return T


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / "metadata.yaml").is_file()


def _check_destination(final: Path, overwrite: bool) -> None:
    if not (final.exists() or final.is_symlink()):
        return
    if not overwrite:
        raise DatasetError(
            f"{final} already exists; pass overwrite=True (liploc: --overwrite) to replace it"
        )
    if not _is_bag_dir(final):
        raise DatasetError(
            f"{final} exists and is not a ROS 2 bag directory (no metadata.yaml); "
            "refusing to replace it"
        )


def _install(tmp_bag: Path, final: Path, staging: Path, overwrite: bool) -> None:
    """Move the finished bag into place, swapping out an old one only at the last moment."""
    _check_destination(final, overwrite)
    if final.exists():
        previous = staging / ".previous"
        os.rename(final, previous)
        try:
            os.rename(tmp_bag, final)
        except OSError:
            os.rename(previous, final)
            raise
    else:
        os.rename(tmp_bag, final)


def _split_stamp(stamp: float) -> tuple[int, int]:
    """(sec, nanosec) of a stamp in seconds, splitting before scaling to keep the nanoseconds
    exact at epoch-sized stamps (1.7e9 s * 1e9 would lose them in a float)."""
    if not math.isfinite(stamp) or stamp < 0:
        raise DatasetError(f"cannot write a message stamped {stamp} s (ROS time is >= 0)")
    sec = math.floor(stamp)
    nanosec = round((stamp - sec) * 1e9)
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return int(sec), int(nanosec)


class _Emitter:
    """Builds and writes the messages of each frame (one instance per bag)."""

    def __init__(
        self,
        writer: Any,
        topics: BagTopics,
        image_encoding: str,
        calibration: Calibration | None,
        T_base_lidar: np.ndarray,
        *,
        odometry: bool | None = False,
    ) -> None:
        from rosbags.interfaces import (
            Qos,
            QosDurability,
            QosHistory,
            QosLiveliness,
            QosReliability,
            QosTime,
        )
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.ROS2_JAZZY)
        self.types = self.store.types
        self.writer = writer
        self.topics = topics
        self.image_encoding = image_encoding
        self.calibration = calibration
        self.T_base_lidar = T_base_lidar
        self.T_lidar_base = invert_transform(T_base_lidar)
        self.jpeg_quality = 95
        self.frames = 0
        self._static_written = False
        #: True: tf odom -> base_link and /odom (the truth only on its topic); False: tf
        #: map -> base_link; None: the first frame decides
        self.with_odometry: bool | None = None
        self._layout_from_first_frame = odometry is None
        self._previous_odom: tuple[int, np.ndarray] | None = None
        self._odometry_labelled = False
        self._ignored_odometry = False

        latched = Qos(
            QosHistory.KEEP_LAST,
            1,
            QosReliability.RELIABLE,
            QosDurability.TRANSIENT_LOCAL,
            QosTime(0, 0),
            QosTime(0, 0),
            QosLiveliness.AUTOMATIC,
            QosTime(0, 0),
            False,
        )
        image_type = (
            "sensor_msgs/msg/CompressedImage"
            if image_encoding == "jpeg"
            else "sensor_msgs/msg/Image"
        )
        self.conn = {
            "tf_static": self._connect(topics.tf_static, "tf2_msgs/msg/TFMessage", [latched]),
            "tf": self._connect(topics.tf, "tf2_msgs/msg/TFMessage"),
            "odometry": self._connect(topics.odometry, "nav_msgs/msg/Odometry"),
            "image": self._connect(topics.image_topic(image_encoding), image_type),
            "points": self._connect(topics.points, "sensor_msgs/msg/PointCloud2"),
        }
        if calibration is not None:
            self.conn["camera_info"] = self._connect(
                topics.camera_info, "sensor_msgs/msg/CameraInfo"
            )
        else:
            log.warning(
                "the source has no calibration: writing no %s and no LiDAR -> camera tf",
                topics.camera_info,
            )
        if odometry is not None:
            self._set_layout(odometry)

    def _set_layout(self, with_odometry: bool) -> None:
        self.with_odometry = with_odometry
        if with_odometry:
            self.conn["odom"] = self._connect(self.topics.odom, "nav_msgs/msg/Odometry")

    def _connect(self, topic: str, msgtype: str, qos: list | None = None) -> Any:
        return self.writer.add_connection(
            topic, msgtype, typestore=self.store, offered_qos_profiles=qos or []
        )

    def _write(self, key: str, msg: Any, ns: int) -> None:
        data = self.store.serialize_cdr(msg, msg.__msgtype__)
        self.writer.write(self.conn[key], ns, data)

    def _header(self, stamp: tuple[int, int], frame_id: str) -> Any:
        t = self.types
        return t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=stamp[0], nanosec=stamp[1]),
            frame_id=frame_id,
        )

    def _transform(self, stamp: tuple[int, int], parent: str, child: str, T: np.ndarray) -> Any:
        t = self.types
        translation, quat = transform_to_quat(T)
        return t["geometry_msgs/msg/TransformStamped"](
            header=self._header(stamp, parent),
            child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](*map(float, translation)),
                rotation=t["geometry_msgs/msg/Quaternion"](*map(float, quat)),
            ),
        )

    def write_frame(self, frame: Frame, time_offset: float) -> None:
        stamp = _split_stamp(float(frame.stamp) + time_offset)
        ns = stamp[0] * 1_000_000_000 + stamp[1]
        t, topics = self.types, self.topics
        where = f"frame {frame.index} (stamp {frame.stamp})"
        if self.with_odometry is None:
            self._set_layout(frame.odometry is not None)
        if not self._static_written:
            self._write_static(stamp, ns)
        if frame.pose is not None:
            T_map_lidar = np.asarray(frame.pose, np.float64)
            if T_map_lidar.shape != (4, 4):
                raise DatasetError(f"{where}: pose has shape {T_map_lidar.shape}, not 4 x 4")
            if np.all(np.isfinite(T_map_lidar)):
                self._write_pose(stamp, ns, T_map_lidar @ self.T_lidar_base)
        self._frame_odometry(frame, stamp, ns, where)
        if self.calibration is not None:
            self._write("camera_info", self._camera_info(stamp), ns)
        if frame.image is not None:
            try:
                if self.image_encoding == "jpeg":
                    data, fmt = rgb_to_compressed(frame.image, "jpeg", self.jpeg_quality)
                    msg = t["sensor_msgs/msg/CompressedImage"](
                        header=self._header(stamp, topics.camera_frame), format=fmt, data=data
                    )
                else:
                    data, step = rgb_to_raw(frame.image, self.image_encoding)
                    height, width = frame.image.shape[:2]
                    msg = t["sensor_msgs/msg/Image"](
                        header=self._header(stamp, topics.camera_frame),
                        height=height,
                        width=width,
                        encoding=self.image_encoding,
                        is_bigendian=0,
                        step=step,
                        data=data,
                    )
            except LiplocError as err:
                raise DatasetError(f"{where}: {err}") from err
            self._write("image", msg, ns)
        if frame.points is not None:
            try:
                fields, point_step, data = xyzi_to_cloud(frame.points)
            except LiplocError as err:
                raise DatasetError(f"{where}: {err}") from err
            count = data.size // point_step
            msg = t["sensor_msgs/msg/PointCloud2"](
                header=self._header(stamp, topics.lidar_frame),
                height=1,
                width=count,
                fields=[
                    t["sensor_msgs/msg/PointField"](
                        name=f.name, offset=f.offset, datatype=f.datatype, count=f.count
                    )
                    for f in fields
                ],
                is_bigendian=False,
                point_step=point_step,
                row_step=point_step * count,
                data=data,
                is_dense=bool(np.isfinite(frame.points).all()),
            )
            self._write("points", msg, ns)
        self.frames += 1

    def _write_static(self, stamp: tuple[int, int], ns: int) -> None:
        topics = self.topics
        transforms = [
            self._transform(stamp, topics.base_frame, topics.lidar_frame, self.T_base_lidar)
        ]
        if self.calibration is not None:
            T_lidar_camera = _check_transform(
                self.calibration.T_lidar_camera, "calibration.T_lidar_camera"
            )
            transforms.append(
                self._transform(stamp, topics.lidar_frame, topics.camera_frame, T_lidar_camera)
            )
        self._write("tf_static", self.types["tf2_msgs/msg/TFMessage"](transforms=transforms), ns)
        self._static_written = True

    def _write_pose(self, stamp: tuple[int, int], ns: int, T_map_base: np.ndarray) -> None:
        t, topics = self.types, self.topics
        if not self.with_odometry:  # else base_link's parent on tf is odom
            tf = self._transform(stamp, topics.map_frame, topics.base_frame, T_map_base)
            self._write("tf", t["tf2_msgs/msg/TFMessage"](transforms=[tf]), ns)
        msg = self._odometry_msg(stamp, topics.map_frame, T_map_base, np.zeros(3), np.zeros(3))
        self._write("odometry", msg, ns)

    def _frame_odometry(self, frame: Frame, stamp: tuple[int, int], ns: int, where: str) -> None:
        if frame.odometry is None:
            return
        T_odom_lidar = np.asarray(frame.odometry, np.float64)
        if T_odom_lidar.shape != (4, 4):
            raise DatasetError(f"{where}: odometry has shape {T_odom_lidar.shape}, not 4 x 4")
        if self.with_odometry and np.all(np.isfinite(T_odom_lidar)):
            self._write_odometry(frame, stamp, ns, T_odom_lidar @ self.T_lidar_base)
        elif not self.with_odometry and self._layout_from_first_frame:
            if not self._ignored_odometry:
                log.warning(
                    "%s has odometry but the first frame had none: the bag carries no "
                    "odometry (tf map -> base_link)",
                    where,
                )
            self._ignored_odometry = True

    def _write_odometry(
        self, frame: Frame, stamp: tuple[int, int], ns: int, T_odom_base: np.ndarray
    ) -> None:
        t, topics = self.types, self.topics
        if not self._odometry_labelled:
            self.writer.set_custom_data(
                "liploc_ros.odometry", str(frame.meta.get("odometry", "recorded"))
            )
            if frame.meta.get("odometry_model"):
                self.writer.set_custom_data(
                    "liploc_ros.odometry_model", str(frame.meta["odometry_model"])
                )
            self._odometry_labelled = True
        tf = self._transform(stamp, topics.odom_frame, topics.base_frame, T_odom_base)
        self._write("tf", t["tf2_msgs/msg/TFMessage"](transforms=[tf]), ns)
        linear, angular = np.zeros(3), np.zeros(3)
        if self._previous_odom is not None and ns > self._previous_odom[0]:
            # the mean twist since the previous frame, in base_link (nav_msgs' convention);
            # dt from integer nanoseconds, exact at epoch-sized stamps
            dt = (ns - self._previous_odom[0]) * 1e-9
            motion = invert_transform(self._previous_odom[1]) @ T_odom_base
            linear = motion[:3, 3] / dt
            angular = Rotation.from_matrix(motion[:3, :3]).as_rotvec() / dt
        self._previous_odom = (ns, T_odom_base)
        msg = self._odometry_msg(stamp, topics.odom_frame, T_odom_base, linear, angular)
        self._write("odom", msg, ns)

    def _odometry_msg(
        self,
        stamp: tuple[int, int],
        parent: str,
        T_parent_base: np.ndarray,
        linear: np.ndarray,
        angular: np.ndarray,
    ) -> Any:
        t, topics = self.types, self.topics
        translation, quat = transform_to_quat(T_parent_base)
        return t["nav_msgs/msg/Odometry"](
            header=self._header(stamp, parent),
            child_frame_id=topics.base_frame,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=t["geometry_msgs/msg/Pose"](
                    position=t["geometry_msgs/msg/Point"](*map(float, translation)),
                    orientation=t["geometry_msgs/msg/Quaternion"](*map(float, quat)),
                ),
                covariance=np.zeros(36),
            ),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](
                    linear=t["geometry_msgs/msg/Vector3"](*map(float, linear)),
                    angular=t["geometry_msgs/msg/Vector3"](*map(float, angular)),
                ),
                covariance=np.zeros(36),
            ),
        )

    def _camera_info(self, stamp: tuple[int, int]) -> Any:
        t = self.types
        calib = self.calibration
        assert calib is not None
        K = np.asarray(calib.camera_matrix, np.float64).reshape(3, 3)
        width, height = (int(v) for v in calib.image_size)
        P = np.zeros((3, 4))
        P[:, :3] = K
        return t["sensor_msgs/msg/CameraInfo"](
            header=self._header(stamp, self.topics.camera_frame),
            height=height,
            width=width,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=K.reshape(-1).copy(),
            r=np.eye(3).reshape(-1),
            p=P.reshape(-1),
            binning_x=0,
            binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        )
