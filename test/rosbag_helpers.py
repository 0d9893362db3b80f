"""Shared fixtures of the bag tests: a small in-memory IndexedSource and direct bag writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from liploc_ros.datasets.base import Calibration, Frame, IndexedSource

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


def pose(yaw_deg: float, xyz: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    out[:3, 3] = xyz
    return out


def calibration(width: int = 120, height: int = 40) -> Calibration:
    T_lidar_camera = np.eye(4)
    # camera optical frame (z forward, x right, y down) in the LiDAR frame (x fwd, z up)
    T_lidar_camera[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    T_lidar_camera[:3, 3] = (0.27, -0.08, -0.06)
    K = np.array([[60.0, 0, width / 2], [0, 60.0, height / 2], [0, 0, 1]])
    return Calibration(camera_matrix=K, image_size=(width, height), T_lidar_camera=T_lidar_camera)


class FakeSource(IndexedSource):
    """A few frames of random images and clouds along a smooth curve (10 Hz)."""

    def __init__(
        self,
        n: int = 5,
        *,
        seed: int = 0,
        start: float = 1_700_000_000.25,
        height: int = 40,
        width: int = 120,
        points: int = 200,
        missing_pose: tuple[int, ...] = (),
        smooth: bool = False,
        fail_at: int | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.name = "fake"
        self.calibration = calibration(width, height)
        self.fail_at = fail_at
        self._stamps = start + 0.1 * np.arange(n)
        if smooth:  # gradients: JPEG keeps them within a few grey levels
            y, x = np.mgrid[0:height, 0:width]
            self._images = (
                np.stack([np.stack([x * 2, y * 5, x + y + 10 * i], -1) for i in range(n)])
                .clip(0, 255)
                .astype(np.uint8)
            )
        else:
            self._images = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
        self._points = [
            (rng.normal(size=(points, 4)) * [10, 10, 1, 0.3]).astype(np.float32) for _ in range(n)
        ]
        self._poses = np.stack(
            [pose(12.0 * i + 5, (1.5 * i, 0.2 * i * i, 0.01 * i)) for i in range(n)]
        )
        for i in missing_pose:
            self._poses[i] = np.nan

    def __len__(self) -> int:
        return len(self._stamps)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        if index == self.fail_at:
            raise RuntimeError(f"simulated failure at frame {index}")
        pose_i = self._poses[index]
        return Frame(
            index=index,
            stamp=float(self._stamps[index]),
            image=self._images[index].copy() if image else None,
            points=self._points[index].copy() if points else None,
            pose=None if np.isnan(pose_i).any() else pose_i.copy(),
        )

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps.copy()

    @property
    def poses(self) -> np.ndarray:
        return self._poses.copy()


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
