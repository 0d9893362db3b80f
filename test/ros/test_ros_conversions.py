"""ROS 2 messages <-> numpy (liploc_ros.ros.conversions), on hand-built rclpy messages."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

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
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header, String

from liploc_ros.datasets.images import CorruptImageError
from liploc_ros.datasets.pointcloud import CorruptCloudError, PointCloudFormatError
from liploc_ros.errors import ImageFormatError, LiplocError
from liploc_ros.ros import conversions as conv

pytestmark = pytest.mark.ros
RNG = np.random.default_rng(11)
FLOAT32, UINT16, FLOAT64 = PointField.FLOAT32, PointField.UINT16, PointField.FLOAT64


def _cloud(fields, rows: np.ndarray, *, height=1, row_pad=0) -> PointCloud2:
    """A PointCloud2 whose data are the bytes of structured ``rows`` (+ row padding)."""
    width = rows.size // height
    step = rows.dtype.itemsize
    body = rows.reshape(height, width).view(np.uint8).reshape(height, width * step)
    body = np.concatenate([body, np.zeros((height, row_pad), np.uint8)], axis=1)
    msg = PointCloud2(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=width * step + row_pad,
        is_dense=False,
    )
    msg.data = array.array("B", body.tobytes())
    return msg


def test_xyzi_float32_cloud():
    points = RNG.normal(size=(40, 4)).astype(np.float32)
    fields = [
        PointField(name=n, offset=4 * i, datatype=FLOAT32, count=1)
        for i, n in enumerate(("x", "y", "z", "intensity"))
    ]
    msg = PointCloud2(height=1, width=40, fields=fields, point_step=16, row_step=640)
    msg.data = array.array("B", points.tobytes())
    out = conv.cloud_to_points(msg)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, points)


def test_cloud_with_padding_extra_fields_and_rows():
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "ring", "intensity", "t"],
            "formats": ["<f4", "<f4", "<f4", "<u2", "<f4", "<f8"],
            "offsets": [0, 4, 8, 12, 16, 24],
            "itemsize": 40,  # 8 bytes of padding after t
        }
    )
    rows = np.zeros(12, dtype)
    for name in ("x", "y", "z", "intensity"):
        rows[name] = RNG.normal(size=12)
    rows["ring"], rows["t"] = np.arange(12), 0.5
    rows["x"][3] = np.nan  # an organised cloud's missing return
    fields = [
        PointField(name="x", offset=0, datatype=FLOAT32, count=1),
        PointField(name="y", offset=4, datatype=FLOAT32, count=1),
        PointField(name="z", offset=8, datatype=FLOAT32, count=1),
        PointField(name="ring", offset=12, datatype=UINT16, count=1),
        PointField(name="intensity", offset=16, datatype=FLOAT32, count=1),
        PointField(name="t", offset=24, datatype=FLOAT64, count=1),
    ]
    out = conv.cloud_to_points(_cloud(fields, rows, height=3, row_pad=24))
    keep = np.ones(12, bool)
    keep[3] = False
    expected = np.stack([rows[n][keep] for n in ("x", "y", "z", "intensity")], axis=1)
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_points_to_cloud_roundtrip_and_header():
    points = RNG.normal(size=(25, 4)).astype(np.float32)
    header = Header(stamp=Time(sec=5, nanosec=7), frame_id="velodyne")
    msg = conv.points_to_cloud(points, header)
    assert (msg.width, msg.height, msg.point_step, msg.row_step) == (25, 1, 16, 400)
    assert msg.is_dense
    assert msg.header.frame_id == "velodyne"
    assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity"]
    np.testing.assert_array_equal(conv.cloud_to_points(msg), points)


def test_corrupt_and_unreadable_clouds_raise_package_errors():
    msg = conv.points_to_cloud(RNG.normal(size=(10, 4)).astype(np.float32))
    msg.data = msg.data[:-16]  # one point short of width * point_step
    with pytest.raises(CorruptCloudError, match="too short"):
        conv.cloud_to_points(msg)
    no_z = conv.points_to_cloud(np.zeros((2, 4), np.float32))
    no_z.fields = [f for f in no_z.fields if f.name != "z"]
    with pytest.raises(PointCloudFormatError, match="no z field"):
        conv.cloud_to_points(no_z)


def test_all_nan_cloud_is_empty():
    msg = conv.points_to_cloud(np.full((5, 4), np.nan, np.float32))
    assert not msg.is_dense
    assert conv.cloud_to_points(msg).shape == (0, 4)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_images(encoding):
    rgb = RNG.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    msg = conv.rgb_to_image(rgb, encoding, Header(frame_id="cam"))
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 9, 27, encoding)
    if encoding == "bgr8":  # the buffer really holds blue first
        assert bytes(msg.data[:3]) == rgb[0, 0, ::-1].tobytes()
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


def test_mono8_image_with_row_padding():
    mono = RNG.integers(0, 256, size=(4, 5), dtype=np.uint8)
    padded = np.concatenate([mono, np.zeros((4, 3), np.uint8)], axis=1)
    msg = Image(height=4, width=5, encoding="mono8", step=8)
    msg.data = array.array("B", padded.tobytes())
    out = conv.image_to_rgb(msg)
    assert out.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


def test_compressed_jpeg_image():
    # smooth content: JPEG error stays small
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    msg = conv.rgb_to_compressed_image(rgb, "jpeg", Header(frame_id="cam"))
    assert "jpeg" in msg.format
    assert bytes(msg.data[:2]) == b"\xff\xd8"  # a JPEG
    out = conv.image_to_rgb(msg)
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).mean() < 3
    # decoded as RGB, not BGR: the red channel carries the x ramp
    assert np.corrcoef(out[:, :, 0].ravel(), xx.ravel())[0, 1] > 0.99


def test_bad_images_raise_package_errors():
    msg = conv.rgb_to_image(np.zeros((4, 4, 3), np.uint8))
    msg.data = msg.data[:10]
    with pytest.raises(CorruptImageError, match="too short"):
        conv.image_to_rgb(msg)
    odd = Image(height=2, width=2, encoding="yuv422", step=4)
    odd.data = array.array("B", bytes(8))
    try:
        import cv_bridge  # noqa: F401
    except ImportError:
        with pytest.raises(ImageFormatError, match="yuv422"):
            conv.image_to_rgb(odd)
    junk = CompressedImage(format="jpeg")
    junk.data = array.array("B", b"not a jpeg at all")
    with pytest.raises(CorruptImageError):
        conv.image_to_rgb(junk)
    with pytest.raises(conv.MessageError):
        conv.image_to_rgb(String())


def _random_pose() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=RNG.integers(1 << 30)).as_matrix()
    T[:3, 3] = RNG.normal(size=3) * 10
    return T


def test_pose_and_transform_roundtrip():
    for _ in range(5):
        T = _random_pose()
        np.testing.assert_allclose(conv.pose_to_matrix(conv.matrix_to_pose(T)), T, atol=1e-12)
        np.testing.assert_allclose(
            conv.transform_to_matrix(conv.matrix_to_transform(T)), T, atol=1e-12
        )


def test_pose_to_matrix_by_hand():
    # 90 degrees about z: x -> y
    s = np.sqrt(0.5)
    pose = Pose(position=Point(x=1.0, y=2.0, z=3.0), orientation=Quaternion(z=s, w=s))
    T = conv.pose_to_matrix(pose)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # an off-unit quaternion is normalised, a zero one is an error
    big = Pose(orientation=Quaternion(z=2 * s, w=2 * s))
    np.testing.assert_allclose(conv.pose_to_matrix(big)[:3, :3], T[:3, :3], atol=1e-12)
    with pytest.raises(conv.MessageError, match="quaternion"):
        conv.pose_to_matrix(Pose(orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=0.0)))
    with pytest.raises(conv.MessageError):
        conv.transform_to_matrix(Transform(translation=Vector3(), rotation=Quaternion(w=np.nan)))


def test_stamps():
    stamp = conv.seconds_to_stamp(1234.5678901234)
    assert (stamp.sec, stamp.nanosec) == (1234, 567890123)
    assert conv.stamp_to_seconds(Time(sec=3, nanosec=250_000_000)) == 3.25
    assert conv.seconds_to_stamp(2.9999999999).sec == 3  # rounds into the next second
    assert conv.seconds_to_stamp(2.9999999999).nanosec == 0
    for t in (0.0, 0.1, 1e9 + 0.123456789):
        assert abs(conv.stamp_to_seconds(conv.seconds_to_stamp(t)) - t) < 1e-6
    with pytest.raises(conv.MessageError):
        conv.seconds_to_stamp(float("nan"))


def test_pose_messages():
    T = _random_pose()
    header = Header(stamp=Time(sec=10, nanosec=500_000_000), frame_id="odom")
    odom = Odometry(header=header, child_frame_id="base_link")
    odom.pose.pose = conv.matrix_to_pose(T)
    stamped = PoseStamped(header=header, pose=conv.matrix_to_pose(T))
    with_cov = PoseWithCovarianceStamped(header=header)
    with_cov.pose.pose = conv.matrix_to_pose(T)
    tf = TransformStamped(header=header, child_frame_id="velo")
    tf.transform = conv.matrix_to_transform(T)
    for msg, child in ((odom, "base_link"), (stamped, ""), (with_cov, ""), (tf, "velo")):
        pose = conv.pose_message_to_matrix(msg)
        assert pose.stamp == 10.5
        assert (pose.frame_id, pose.child_frame_id) == ("odom", child)
        np.testing.assert_allclose(pose.matrix, T, atol=1e-12)
    with pytest.raises(LiplocError, match="cannot read a pose"):
        conv.pose_message_to_matrix(Image(header=header))
    assert set(conv.POSE_MESSAGE_TYPES) >= {"nav_msgs/msg/Odometry"}


def test_cloud_data_is_a_byte_array():
    """array.array data: a 120k-point scan does not go through rclpy's per-byte check."""
    points = RNG.normal(size=(120_000, 4)).astype(np.float32)
    msg = conv.points_to_cloud(points)
    assert isinstance(msg.data, array.array)
    assert len(msg.data) == 120_000 * 16
