"""Bag messages built with rosbags' own types, and bags written directly with them (not
through our writer); the in-memory source the bag tests write is in source_helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


def ros_time(t: float):
    sec = int(np.floor(t))
    return T["builtin_interfaces/msg/Time"](sec=sec, nanosec=round((t - sec) * 1e9))


def header(t: float, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=ros_time(t), frame_id=frame_id)


def transform_stamped(t: float, parent: str, child: str, T_pc: np.ndarray):
    q = Rotation.from_matrix(T_pc[:3, :3]).as_quat()
    return T["geometry_msgs/msg/TransformStamped"](
        header=header(t, parent),
        child_frame_id=child,
        transform=T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](*map(float, T_pc[:3, 3])),
            rotation=T["geometry_msgs/msg/Quaternion"](*map(float, q)),
        ),
    )


def tf_message(transforms: list):
    return T["tf2_msgs/msg/TFMessage"](transforms=transforms)


def point_field(name: str, offset: int, datatype: int = 7, count: int = 1):
    return T["sensor_msgs/msg/PointField"](
        name=name, offset=offset, datatype=datatype, count=count
    )


def cloud_msg(
    t: float,
    frame_id: str,
    points: np.ndarray,
    names: tuple[str, ...] = ("x", "y", "z", "i"),
    *,
    bigendian: bool = False,
):
    data = np.ascontiguousarray(points[:, : len(names)], "<f4")
    n = data.shape[0]
    step = 4 * len(names)
    return T["sensor_msgs/msg/PointCloud2"](
        header=header(t, frame_id),
        height=1,
        width=n,
        fields=[point_field(name, 4 * k) for k, name in enumerate(names)],
        is_bigendian=bigendian,
        point_step=step,
        row_step=step * n,
        data=data.reshape(-1).view(np.uint8),
        is_dense=True,
    )


def image_msg(t: float, frame_id: str, rgb: np.ndarray, encoding: str = "bgr8"):
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    h, w = rgb.shape[:2]
    return T["sensor_msgs/msg/Image"](
        header=header(t, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * 3,
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def write_raw_bag(path: Path, messages: list[tuple[str, str, float, object]], storage="mcap"):
    """Write (topic, msgtype, stamp, msg or raw bytes) with rosbags' own Writer."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, msgtype, stamp, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            data = msg if isinstance(msg, bytes) else STORE.serialize_cdr(msg, msgtype)
            writer.write(conns[topic], round(stamp * 1e9), data)
    return path
