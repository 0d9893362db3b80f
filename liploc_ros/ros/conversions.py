"""ROS 2 messages <-> the numpy types of the core (scans, images, 4 x 4 poses, seconds).

The parsing itself lives in the ROS-free core (:mod:`liploc_ros.datasets.pointcloud`,
:mod:`liploc_ros.datasets.images`, :mod:`liploc_ros.datasets.interpolation`), shared with the
bag reader; this module only adapts rclpy message objects to it, so a node converts exactly
as the offline tools do. It needs the message packages (sensor_msgs, geometry_msgs,
nav_msgs, builtin_interfaces), not a running node, and never sensor_msgs_py; cv_bridge is used
only, where installed, for raw image encodings the core does not decode (yuv422, 16UC1, ...).

Errors: a message that cannot be converted raises a :class:`~liploc_ros.errors.LiplocError`
subclass: the core's :class:`~liploc_ros.datasets.pointcloud.CorruptCloudError` /
:class:`~liploc_ros.datasets.images.CorruptImageError` for buffers that do not fit their
header, :class:`MessageError` for a pose with an invalid quaternion or a message of a type
this module does not convert.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (
    Point,
    Pose,
    PoseStamped,
    PoseWithCovarianceStamped,
    Quaternion,
    Transform,
    TransformStamped,
    Vector3,
)
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from liploc_ros.datasets.images import (
    SUPPORTED_ENCODINGS,
    compressed_to_rgb,
    raw_to_rgb,
    rgb_to_compressed,
    rgb_to_raw,
)
from liploc_ros.datasets.interpolation import make_transform, transform_to_quat
from liploc_ros.datasets.pointcloud import cloud_to_xyzi, xyzi_to_cloud
from liploc_ros.errors import DatasetError, ImageFormatError, LiplocError

__all__ = [
    "POSE_MESSAGE_TYPES",
    "MessageError",
    "StampedPose",
    "cloud_to_points",
    "image_to_rgb",
    "matrix_to_pose",
    "matrix_to_transform",
    "points_to_cloud",
    "pose_message_to_matrix",
    "pose_to_matrix",
    "rgb_to_compressed_image",
    "rgb_to_image",
    "seconds_to_stamp",
    "stamp_to_seconds",
    "transform_to_matrix",
]

_NS = 1_000_000_000


class MessageError(LiplocError):
    """A ROS message that cannot be converted (invalid quaternion, unsupported type)."""


# -- time ---------------------------------------------------------------------------------


def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds (the core's stamps)."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time, rounded to the nanosecond."""
    if not np.isfinite(seconds):
        raise MessageError(f"cannot stamp a message with non-finite time {seconds!r}")
    sec, nanosec = divmod(round(float(seconds) * _NS), _NS)
    return Time(sec=int(sec), nanosec=int(nanosec))


# -- point clouds -------------------------------------------------------------------------


def cloud_to_points(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> N x 4 float32 (x, y, z, intensity), non-finite points dropped.

    Any layout the core reads works: padding inside points and rows, extra fields, organised
    clouds, intensity under "intensity", "i", "reflectance" or "reflectivity" (zeros if none).
    """
    return cloud_to_xyzi(
        msg.fields,
        msg.height,
        msg.width,
        msg.point_step,
        msg.row_step,
        msg.data,
        is_bigendian=bool(msg.is_bigendian),
    )


def points_to_cloud(points: np.ndarray, header: Header | None = None) -> PointCloud2:
    """N x 4 (or N x 3) points -> a dense, unorganised PointCloud2 (x y z intensity float32)."""
    fields, step, data = xyzi_to_cloud(points)
    count = int(data.size // step)
    msg = PointCloud2(
        header=header if header is not None else Header(),
        height=1,
        width=count,
        fields=[
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in fields
        ],
        is_bigendian=False,
        point_step=step,
        row_step=step * count,
        is_dense=bool(np.isfinite(np.asarray(points)).all()),
    )
    msg.data = _byte_array(data)
    return msg


def _byte_array(data: np.ndarray) -> array.array:
    # an array.array('B') is stored as is; bytes or a list would be checked value by value
    return array.array("B", np.ascontiguousarray(data, np.uint8).tobytes())


# -- images -------------------------------------------------------------------------------


def image_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Image or CompressedImage -> H x W x 3 uint8 RGB (a fresh array).

    Raw encodings the core decodes (rgb8, bgr8, mono8, mono16, rgba8, bgra8, 8-bit Bayer)
    never need cv_bridge; any other is handed to cv_bridge where it is installed.
    """
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg.data, msg.format)
    if not isinstance(msg, Image):
        raise MessageError(f"expected sensor_msgs/Image or CompressedImage, got {type(msg)}")
    encoding = msg.encoding.strip().lower()
    if encoding in SUPPORTED_ENCODINGS:
        return raw_to_rgb(
            msg.encoding,
            msg.height,
            msg.width,
            msg.step,
            msg.data,
            is_bigendian=bool(msg.is_bigendian),
        )
    return _cv_bridge_to_rgb(msg)


def _cv_bridge_to_rgb(msg: Image) -> np.ndarray:
    try:
        from cv_bridge import CvBridge, CvBridgeError
    except ImportError as err:
        raise ImageFormatError(
            f"unsupported image encoding {msg.encoding!r} (supported without cv_bridge: "
            f"{', '.join(SUPPORTED_ENCODINGS)}; cv_bridge is not installed)"
        ) from err
    try:
        rgb = CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except (CvBridgeError, TypeError, ValueError) as err:
        raise ImageFormatError(
            f"cv_bridge cannot convert a {msg.encoding!r} image to rgb8: {err}"
        ) from err
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8", header: Header | None = None) -> Image:
    """H x W x 3 uint8 RGB -> sensor_msgs/Image in rgb8 or bgr8."""
    data, step = rgb_to_raw(rgb, encoding)
    msg = Image(
        header=header if header is not None else Header(),
        height=int(rgb.shape[0]),
        width=int(rgb.shape[1]),
        encoding=encoding.strip().lower(),
        is_bigendian=0,
        step=int(step),
    )
    msg.data = _byte_array(data)
    return msg


def rgb_to_compressed_image(
    rgb: np.ndarray, fmt: str = "jpeg", header: Header | None = None, quality: int = 95
) -> CompressedImage:
    """H x W x 3 uint8 RGB -> sensor_msgs/CompressedImage (JPEG or PNG)."""
    data, format_string = rgb_to_compressed(rgb, fmt, quality)
    msg = CompressedImage(header=header if header is not None else Header(), format=format_string)
    msg.data = _byte_array(data)
    return msg


# -- poses --------------------------------------------------------------------------------


def _matrix(translation: Any, rotation: Any, what: str) -> np.ndarray:
    quat = (rotation.x, rotation.y, rotation.z, rotation.w)
    try:
        return make_transform((translation.x, translation.y, translation.z), quat)
    except DatasetError as err:
        raise MessageError(f"{what} has an invalid orientation quaternion {quat}") from err


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4 x 4 float64 (the quaternion is normalised)."""
    return _matrix(pose.position, pose.orientation, "pose")


def transform_to_matrix(transform: Transform) -> np.ndarray:
    """geometry_msgs/Transform -> 4 x 4 float64 (the quaternion is normalised)."""
    return _matrix(transform.translation, transform.rotation, "transform")


def _translation_quat(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise MessageError(f"expected a finite 4 x 4 transform, got shape {T.shape}")
    return transform_to_quat(T)


def matrix_to_pose(T: np.ndarray) -> Pose:
    """4 x 4 rigid transform -> geometry_msgs/Pose."""
    t, q = _translation_quat(T)
    return Pose(
        position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def matrix_to_transform(T: np.ndarray) -> Transform:
    """4 x 4 rigid transform -> geometry_msgs/Transform."""
    t, q = _translation_quat(T)
    return Transform(
        translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


@dataclass(frozen=True)
class StampedPose:
    """A pose message reduced to what the map builder needs: when, where, which frames."""

    stamp: float
    #: the frame the pose is expressed in (header.frame_id)
    frame_id: str
    #: the frame whose pose it is ("" where the message does not say: PoseStamped)
    child_frame_id: str
    #: 4 x 4 float64 T_frame_child
    matrix: np.ndarray = field(repr=False)


#: the message types :func:`pose_message_to_matrix` converts, by their ROS type name
POSE_MESSAGE_TYPES: dict[str, type] = {
    "nav_msgs/msg/Odometry": Odometry,
    "geometry_msgs/msg/PoseStamped": PoseStamped,
    "geometry_msgs/msg/PoseWithCovarianceStamped": PoseWithCovarianceStamped,
    "geometry_msgs/msg/TransformStamped": TransformStamped,
}


def pose_message_to_matrix(msg: Any) -> StampedPose:
    """Odometry / PoseStamped / PoseWithCovarianceStamped / TransformStamped -> StampedPose."""
    stamp = stamp_to_seconds(msg.header.stamp)
    frame = msg.header.frame_id
    if isinstance(msg, Odometry):
        return StampedPose(stamp, frame, msg.child_frame_id, pose_to_matrix(msg.pose.pose))
    if isinstance(msg, PoseStamped):
        return StampedPose(stamp, frame, "", pose_to_matrix(msg.pose))
    if isinstance(msg, PoseWithCovarianceStamped):
        return StampedPose(stamp, frame, "", pose_to_matrix(msg.pose.pose))
    if isinstance(msg, TransformStamped):
        return StampedPose(stamp, frame, msg.child_frame_id, transform_to_matrix(msg.transform))
    raise MessageError(
        f"cannot read a pose from a {type(msg).__name__} message "
        f"(supported: {', '.join(POSE_MESSAGE_TYPES)})"
    )
