"""The messages one frame becomes in a written bag, and the tf / odometry layout they follow.

:class:`FrameEmitter` turns each :class:`~liploc_ros.datasets.base.Frame` into the image,
camera info, point cloud, ground-truth pose, odometry and tf messages that
:func:`~liploc_ros.datasets.rosbag_writer.write_bag` describes (its module docstring lists
them), serialises them with the ROS 2 Jazzy type store and hands them to a rosbags Writer.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.datasets.base import Calibration, Frame
from liploc_ros.datasets.images import rgb_to_compressed, rgb_to_raw
from liploc_ros.datasets.interpolation import transform_to_quat
from liploc_ros.datasets.pointcloud import xyzi_to_cloud
from liploc_ros.datasets.rosbag_topics import BagTopics, check_transform
from liploc_ros.errors import DatasetError, LiplocError
from liploc_ros.geometry import invert_transform

__all__ = ["FrameEmitter", "split_stamp"]

log = logging.getLogger(__name__)


def split_stamp(stamp: float) -> tuple[int, int]:
    """(sec, nanosec) of a stamp in seconds, splitting before scaling to keep the nanoseconds
    exact at epoch-sized stamps (1.7e9 s * 1e9 would lose them in a float)."""
    if not math.isfinite(stamp) or stamp < 0:
        raise DatasetError(f"cannot write a message stamped {stamp} s (ROS time is >= 0)")
    sec = math.floor(stamp)
    nanosec = round((stamp - sec) * 1e9)
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return int(sec), int(nanosec)


class FrameEmitter:
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
        stamp = split_stamp(float(frame.stamp) + time_offset)
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
            T_lidar_camera = check_transform(
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
