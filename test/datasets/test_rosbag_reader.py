"""RosbagSource on bags written directly with rosbags (not through our writer)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from rosbag_helpers import (
    STORE,
    T,
    cloud_msg,
    header,
    image_msg,
    tf_message,
    transform_stamped,
    write_raw_bag,
)
from scipy.spatial.transform import Rotation
from source_helpers import pose

from liploc_ros.datasets.rosbag_pairing import pair_by_stamp
from liploc_ros.datasets.rosbag_reader import RosbagSource
from liploc_ros.errors import ConfigError, DatasetError

T0 = 1_317_000_000.0  # a KITTI-raw-like epoch stamp
RNG = np.random.default_rng(11)
CLOUD = "/kitti/velo/pointcloud"
COLOR = "/kitti/camera_color_left/image_raw"
PC2 = "sensor_msgs/msg/PointCloud2"
IMG = "sensor_msgs/msg/Image"
TFM = "tf2_msgs/msg/TFMessage"

T_BASE_IMU = pose(0.0, (-0.05, 0.32, 0.93))
T_IMU_VELO = pose(-0.8, (-0.81, 0.32, 0.80))
T_BASE_CAM = pose(0.0, (0.27, 0.0, 1.65)) @ np.array(
    [[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float
)


def world_base(t: float) -> np.ndarray:
    """The analytic vehicle motion: yaw 10 deg/s, 2 m/s forward, 0.5 m/s left."""
    dt = t - T0
    return pose(10.0 * dt, (2.0 * dt, 0.5 * dt, 0.0))


def scan_stamp(j: int) -> float:
    return T0 + 0.1 * j + 0.005


def kitti2bag_messages(n_scans: int = 6, *, image_delay: float = 0.012, tf_span=(0.05, 0.43)):
    """Messages of a kitti2bag-like drive; returns (messages, clouds, images)."""
    msgs, clouds, images = [], [], []
    static = [
        transform_stamped(T0, "base_link", "imu_link", T_BASE_IMU),
        transform_stamped(T0, "imu_link", "velo_link", T_IMU_VELO),
        transform_stamped(T0, "base_link", "camera_color_left", T_BASE_CAM),
    ]
    msgs.append(("/tf_static", TFM, T0, tf_message(static)))
    for t in np.arange(T0 + tf_span[0], T0 + tf_span[1] + 1e-9, 0.02):
        tr = transform_stamped(float(t), "world", "base_link", world_base(float(t)))
        msgs.append(("/tf", TFM, float(t) + 0.001, tf_message([tr])))
    info = T["sensor_msgs/msg/CameraInfo"](
        header=header(T0, "camera_color_left"),
        height=30,
        width=50,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([40.0, 0, 25, 0, 40, 15, 0, 0, 1]),
        r=np.eye(3).ravel(),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False),
    )
    for j in range(n_scans):
        ts = scan_stamp(j)
        points = RNG.normal(size=(100, 4)).astype(np.float32) * 5
        rgb = RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)
        clouds.append(points)
        images.append(rgb)
        ti = ts + image_delay
        msgs.append((CLOUD, PC2, ts + 0.06, cloud_msg(ts, "velo_link", points)))
        msgs.append((COLOR, IMG, ti + 0.03, image_msg(ti, "camera_color_left", rgb, "bgr8")))
        gray = image_msg(ti, "camera_gray_left", rgb[:, :, :1].repeat(3, 2), "rgb8")
        msgs.append(("/kitti/camera_gray_left/image_raw", IMG, ti + 0.03, gray))
        msgs.append(
            ("/kitti/camera_color_left/camera_info", "sensor_msgs/msg/CameraInfo", ti + 0.03, info)
        )
    return msgs, clouds, images


@pytest.fixture(scope="module")
def kitti_bag(tmp_path_factory):
    msgs, clouds, images = kitti2bag_messages()
    path = write_raw_bag(tmp_path_factory.mktemp("bags") / "kitti", msgs)
    return path, clouds, images


def test_kitti2bag_layout_with_tf_chain(kitti_bag):
    path, clouds, images = kitti_bag
    reader = RosbagSource(path)
    assert (reader.image_topic, reader.points_topic) == (COLOR, CLOUD)
    assert (reader.map_frame, reader.lidar_frame, reader.pose_source) == (
        "world",
        "velo_link",
        "tf",
    )
    frames = list(reader)
    # tf covers 0.05 .. 0.43 s: scans 0 (0.005 s) and 5 (0.505 s) fall outside
    assert [round(f.stamp - T0, 3) for f in frames] == [0.105, 0.205, 0.305, 0.405]
    assert reader.stats.no_pose == 2
    assert reader.stats.anchors == 6
    assert reader.stats.frames == 4
    for k, frame in enumerate(frames):
        j = k + 1
        np.testing.assert_array_equal(frame.points, clouds[j])  # field "i" is the intensity
        np.testing.assert_array_equal(frame.image, images[j])  # bgr8 -> RGB
        expected = world_base(scan_stamp(j)) @ T_BASE_IMU @ T_IMU_VELO
        np.testing.assert_allclose(frame.pose, expected, atol=1e-9)
        assert frame.meta["image_stamp"] == pytest.approx(scan_stamp(j) + 0.012, abs=1e-6)
    calib = reader.calibration
    assert calib.image_size == (50, 30)
    np.testing.assert_allclose(calib.camera_matrix, [[40, 0, 25], [0, 40, 15], [0, 0, 1]])
    np.testing.assert_allclose(
        calib.T_lidar_camera, np.linalg.inv(T_BASE_IMU @ T_IMU_VELO) @ T_BASE_CAM, atol=1e-12
    )


def test_choosing_the_gray_camera_and_the_map_frame(kitti_bag):
    path, _, images = kitti_bag
    reader = RosbagSource(
        path, image_topic="/kitti/camera_gray_left/image_raw", map_frame="base_link"
    )
    frames = list(reader)
    assert len(frames) == 6  # base_link -> velo_link is static: every scan has a pose
    np.testing.assert_array_equal(frames[2].image[:, :, 1], images[2][:, :, 0])
    np.testing.assert_allclose(frames[0].pose, T_BASE_IMU @ T_IMU_VELO, atol=1e-12)


def test_camera_anchor_and_tolerance(kitti_bag):
    path, clouds, images = kitti_bag
    reader = RosbagSource(path, anchor="camera")
    frames = list(reader)
    assert [round(f.stamp - T0, 3) for f in frames] == [0.117, 0.217, 0.317, 0.417]
    np.testing.assert_array_equal(frames[0].image, images[1])
    np.testing.assert_array_equal(frames[0].points, clouds[1])
    expected = world_base(scan_stamp(1) + 0.012) @ T_BASE_IMU @ T_IMU_VELO
    np.testing.assert_allclose(frames[0].pose, expected, atol=1e-9)
    # images 12 ms after their scans: a 10 ms tolerance pairs nothing
    strict_sync = RosbagSource(path, tolerance=0.01)
    assert list(strict_sync) == []
    assert strict_sync.stats.no_match == 4
    assert strict_sync.stats.no_pose == 2
    # ... unless images are not wanted
    assert len(list(strict_sync.iter_frames(image=False))) == 4


def test_scans_without_an_image_are_dropped_and_counted(tmp_path):
    msgs, clouds, _ = kitti2bag_messages(6, tf_span=(0.0, 0.6))
    msgs = [m for m in msgs if not (m[0] == COLOR and abs(m[2] - (scan_stamp(3) + 0.042)) < 1e-6)]
    reader = RosbagSource(write_raw_bag(tmp_path / "b", msgs))
    frames = list(reader)
    assert len(frames) == 5
    assert reader.stats.no_match == 1
    assert not any(np.array_equal(f.points, clouds[3]) for f in frames)


def _odometry(t: float, parent: str, child: str, T_pc: np.ndarray):
    q = Rotation.from_matrix(T_pc[:3, :3]).as_quat()
    return T["nav_msgs/msg/Odometry"](
        header=header(t, parent),
        child_frame_id=child,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](*map(float, T_pc[:3, 3])),
                orientation=T["geometry_msgs/msg/Quaternion"](*map(float, q)),
            ),
            covariance=np.zeros(36),
        ),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](
                linear=T["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0),
                angular=T["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0),
            ),
            covariance=np.zeros(36),
        ),
    )


def _pose_msg(kind: str, t: float, parent: str, T_pc: np.ndarray):
    if kind == "nav_msgs/msg/Odometry":
        return _odometry(t, parent, "velo", T_pc)
    inner = _odometry(t, parent, "velo", T_pc).pose
    if kind == "geometry_msgs/msg/PoseStamped":
        return T[kind](header=header(t, parent), pose=inner.pose)
    return T[kind](header=header(t, parent), pose=inner)


@pytest.mark.parametrize(
    "kind",
    [
        "nav_msgs/msg/Odometry",
        "geometry_msgs/msg/PoseStamped",
        "geometry_msgs/msg/PoseWithCovarianceStamped",
    ],
)
def test_pose_topics_without_tf(tmp_path, kind):
    msgs = []
    for k in range(11):
        t = T0 + 0.05 * k
        msgs.append(("/gt", kind, t, _pose_msg(kind, t, "odom", world_base(t))))
    points = RNG.normal(size=(10, 4)).astype(np.float32)
    for j in range(4):
        msgs.append(("/velo", PC2, scan_stamp(j), cloud_msg(scan_stamp(j), "velo", points)))
    reader = RosbagSource(write_raw_bag(tmp_path / "b", msgs, storage="sqlite3"))
    assert (reader.pose_source, reader.pose_topic, reader.map_frame) == ("topic", "/gt", "odom")
    assert reader.anchor == "lidar"
    assert reader.image_topic is None
    frames = list(reader.iter_frames(image=False))
    assert len(frames) == 4
    for j, frame in enumerate(frames):
        np.testing.assert_allclose(frame.pose, world_base(scan_stamp(j)), atol=1e-9)
        assert frame.image is None


def test_odometry_of_base_link_is_composed_with_tf_static(tmp_path):
    msgs = [
        (
            "/tf_static",
            TFM,
            T0,
            tf_message([transform_stamped(T0, "base_link", "velo", T_BASE_IMU @ T_IMU_VELO)]),
        )
    ]
    for k in range(11):
        t = T0 + 0.05 * k
        odom = _odometry(t, "map", "base_link", world_base(t))
        msgs.append(("/odom", "nav_msgs/msg/Odometry", t, odom))
    points = RNG.normal(size=(10, 4)).astype(np.float32)
    msgs.append(("/velo", PC2, scan_stamp(2), cloud_msg(scan_stamp(2), "velo", points)))
    frames = list(RosbagSource(write_raw_bag(tmp_path / "b", msgs)))
    expected = world_base(scan_stamp(2)) @ T_BASE_IMU @ T_IMU_VELO
    np.testing.assert_allclose(frames[0].pose, expected, atol=1e-9)
    # without the mount in tf, the reader cannot guess: a clear error
    bare = write_raw_bag(tmp_path / "c", msgs[1:])
    with pytest.raises(DatasetError, match=r"pose of 'base_link'.*no transform from it to the"):
        RosbagSource(bare)
    # ... unless told that the odometry is the LiDAR's
    assert len(list(RosbagSource(bare, pose_frame="velo"))) == 1


def test_camera_only_bag_is_anchored_on_images(tmp_path):
    msgs = []
    rgb = RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    for k in range(5):
        t = T0 + 0.1 * k
        msgs.append(
            ("/odom", "nav_msgs/msg/Odometry", t, _odometry(t, "map", "base_link", world_base(t)))
        )
        msgs.append(("/cam/image", IMG, t + 0.01, image_msg(t + 0.01, "cam", rgb, "rgb8")))
    reader = RosbagSource(write_raw_bag(tmp_path / "b", msgs))
    assert reader.anchor == "camera"
    assert reader.points_topic is None
    frames = list(reader)
    assert len(frames) == 4  # the last image (0.41 s) is after the last pose (0.4 s)
    assert frames[0].points is None
    np.testing.assert_array_equal(frames[0].image, rgb)
    np.testing.assert_allclose(frames[0].pose, world_base(T0 + 0.01), atol=1e-9)
    with pytest.raises(DatasetError, match="anchor='lidar' needs a PointCloud2 topic"):
        RosbagSource(tmp_path / "b", anchor="lidar")


def _simple_bag(tmp_path, name, cloud=None, image=None, extra=()):
    """Three scans with optional replacement cloud / image messages, static tf only."""
    points = RNG.normal(size=(20, 4)).astype(np.float32)
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msgs = [("/tf", TFM, T0, tf_message([transform_stamped(T0, "map", "velo", np.eye(4))]))]
    msgs += [
        ("/tf", TFM, T0 + 1, tf_message([transform_stamped(T0 + 1, "map", "velo", np.eye(4))]))
    ]
    for j in range(3):
        t = T0 + 0.1 * (j + 1)
        c = cloud(j, t) if cloud else None
        i = image(j, t) if image else None
        msgs.append((CLOUD, PC2, t, cloud_msg(t, "velo", points) if c is None else c))
        msgs.append((COLOR, IMG, t, image_msg(t, "cam", rgb) if i is None else i))
    msgs += list(extra)
    return write_raw_bag(tmp_path / name, msgs), points, rgb


def test_missing_or_ambiguous_topics_list_the_candidates(tmp_path):
    path, _, _ = _simple_bag(
        tmp_path,
        "b",
        extra=[
            (
                "/other/points",
                PC2,
                T0 + 0.5,
                cloud_msg(T0 + 0.5, "velo", np.zeros((1, 4), np.float32)),
            )
        ],
    )
    with pytest.raises(
        DatasetError,
        match=r"no topic '/nope'.*point cloud topics in the bag: "
        r"/kitti/velo/pointcloud \(sensor_msgs/msg/PointCloud2\), /other/points",
    ):
        RosbagSource(path, points_topic="/nope")
    with pytest.raises(
        DatasetError, match=r"topic '/tf' \(image_topic\) is tf2_msgs/msg/TFMessage"
    ):
        RosbagSource(path, image_topic="/tf")
    # kitti2bag's name wins over other candidates; two unknown ones are ambiguous
    assert RosbagSource(path).points_topic == CLOUD
    msgs = [
        (t, PC2, T0, cloud_msg(T0, "velo", np.zeros((1, 4), np.float32))) for t in ("/a", "/b")
    ]
    with pytest.raises(
        DatasetError,
        match=r"several point cloud topics, choose one with "
        r"points_topic=...: /a \(sensor_msgs/msg/PointCloud2\), /b",
    ):
        RosbagSource(write_raw_bag(tmp_path / "c", msgs))
    with pytest.raises(DatasetError, match="no Image, CompressedImage or PointCloud2 topic"):
        RosbagSource(write_raw_bag(tmp_path / "d", [("/tf", TFM, T0, tf_message([]))]))


def test_bag_paths_and_options_are_checked(tmp_path):
    with pytest.raises(DatasetError, match="no bag at"):
        RosbagSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"without metadata\.yaml"):
        RosbagSource(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"unknown key.*'tolerence'"):
        RosbagSource(tmp_path / "empty", tolerence=0.1)
    with pytest.raises(ConfigError, match="tolerance must be"):
        RosbagSource(tmp_path / "empty", tolerance=-1.0)
    path, _, _ = _simple_bag(tmp_path, "b")
    # the storage file itself is accepted too (its directory is the bag)
    assert RosbagSource(path / "b.mcap").path == path / "b.mcap"
    with pytest.raises(
        DatasetError, match=r"LiDAR frame 'lidar' is not in the tf tree.*map -> velo"
    ):
        RosbagSource(path, lidar_frame="lidar")
    with pytest.raises(DatasetError, match="pose_source='topic' but no Odometry"):
        RosbagSource(path, pose_source="topic")


def test_unsupported_image_encoding_stops_the_read(tmp_path):
    def float_image(j, t):
        msg = image_msg(t, "cam", np.zeros((4, 6, 3), np.uint8))
        msg.encoding = "32FC1"
        return msg

    path, _, _ = _simple_bag(tmp_path, "b", image=float_image)
    with pytest.raises(
        DatasetError,
        match=rf"{COLOR} at {T0 + 0.1:.9f} s: unsupported image "
        r"encoding '32FC1'",
    ):
        list(RosbagSource(path))
    assert len(list(RosbagSource(path).iter_frames(image=False))) == 3


@pytest.mark.parametrize(
    ("names", "bigendian", "match"),
    [(("x", "y", "i"), False, "no z field"), (("x", "y", "z", "i"), True, "big-endian")],
)
def test_unreadable_cloud_layouts_stop_the_read(tmp_path, names, bigendian, match):
    def bad(j, t):
        return cloud_msg(t, "velo", np.ones((5, 4), np.float32), names, bigendian=bigendian)

    path, _, _ = _simple_bag(tmp_path, "b", cloud=bad)
    with pytest.raises(DatasetError, match=rf"{CLOUD} at .* s: .*{match}"):
        list(RosbagSource(path))


def test_nan_points_dropped_and_all_nan_scan_skipped(tmp_path, caplog):
    nan_cloud = np.full((7, 4), np.nan, np.float32)

    def clouds(j, t):
        if j == 1:
            return cloud_msg(t, "velo", nan_cloud)
        partly = RNG.normal(size=(7, 4)).astype(np.float32)
        partly[2] = np.nan
        return cloud_msg(t, "velo", partly)

    path, _, _ = _simple_bag(tmp_path, "b", cloud=clouds)
    reader = RosbagSource(path)
    with caplog.at_level(logging.WARNING, logger="liploc_ros.datasets.rosbag_reader"):
        frames = list(reader)
    assert len(frames) == 2
    assert reader.stats.empty_cloud == 1
    assert all(f.points.shape == (6, 4) and np.isfinite(f.points).all() for f in frames)
    assert f"{CLOUD} at {T0 + 0.2:.9f} s has no finite point" in caplog.text


def test_corrupt_messages_are_skipped_and_counted_or_raise_when_strict(tmp_path, caplog):
    def wrong_step(j, t):
        if j != 2:
            return None
        msg = image_msg(t, "cam", np.zeros((4, 6, 3), np.uint8))
        msg.step = 10
        return msg

    garbage = [
        (CLOUD, PC2, T0 + 0.15, b"\x00\x01\x00\x00" + b"\xff" * 40),
        ("/tf", TFM, T0 + 0.5, b"\x00\x01garbage"),
    ]
    path, points, _ = _simple_bag(tmp_path, "b", image=wrong_step, extra=garbage)
    reader = RosbagSource(path)
    with caplog.at_level(logging.WARNING, logger="liploc_ros.datasets.rosbag_reader"):
        frames = list(reader)
    # scan 2's image is corrupt: the frame goes; the garbage cloud is skipped
    assert len(frames) == 2
    assert reader.stats.corrupt == {CLOUD: 1, COLOR: 1, "/tf": 1}
    np.testing.assert_array_equal(frames[0].points, points)
    assert f"corrupt message on {CLOUD} at {T0 + 0.15:.9f} s" in caplog.text
    assert "step 10 is smaller than one row" in caplog.text
    with pytest.raises(DatasetError, match=r"corrupt message on /tf at"):
        RosbagSource(path, strict=True)
    garbage_only_cloud = _simple_bag(tmp_path, "c", extra=garbage[:1])[0]
    with pytest.raises(DatasetError, match=rf"corrupt message on {CLOUD} at {T0 + 0.15:.9f} s"):
        list(RosbagSource(garbage_only_cloud, strict=True))


def test_ros1_bag_roundtrip(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(
        get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage")
    )
    t1 = store.types

    def hdr(t, frame):
        sec = int(t)
        stamp = t1["builtin_interfaces/msg/Time"](sec=sec, nanosec=round((t - sec) * 1e9))
        return t1["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame)

    def tfs(t, parent, child, T_pc):
        q = Rotation.from_matrix(T_pc[:3, :3]).as_quat()
        return t1["geometry_msgs/msg/TransformStamped"](
            header=hdr(t, parent),
            child_frame_id=child,
            transform=t1["geometry_msgs/msg/Transform"](
                translation=t1["geometry_msgs/msg/Vector3"](*map(float, T_pc[:3, 3])),
                rotation=t1["geometry_msgs/msg/Quaternion"](*map(float, q)),
            ),
        )

    points = RNG.normal(size=(30, 4)).astype(np.float32)
    rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    path = tmp_path / "drive.bag"
    with Writer(path) as writer:
        c_tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=store)
        c_pc = writer.add_connection(CLOUD, PC2, typestore=store)
        c_im = writer.add_connection(COLOR, IMG, typestore=store)
        c_ci = writer.add_connection(
            "/kitti/camera_color_left/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store
        )

        def put(conn, t, msg):
            writer.write(conn, round(t * 1e9), store.serialize_ros1(msg, conn.msgtype))

        for k in range(6):
            t = T0 + 0.1 * k
            tr = [
                tfs(t, "/world", "/base_link", world_base(t)),
                tfs(t, "/base_link", "/velo_link", T_BASE_IMU @ T_IMU_VELO),
                tfs(t, "/base_link", "/camera_color_left", T_BASE_CAM),
            ]
            put(c_tf, t, t1["tf2_msgs/msg/TFMessage"](transforms=tr))
        for j in range(4):
            ts = scan_stamp(j)
            data = np.ascontiguousarray(points).reshape(-1).view(np.uint8)
            cloud = t1[PC2](
                header=hdr(ts, "/velo_link"),
                height=1,
                width=30,
                fields=[
                    t1["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
                    for i, n in enumerate(("x", "y", "z", "intensity"))
                ],
                is_bigendian=False,
                point_step=16,
                row_step=480,
                data=data,
                is_dense=True,
            )
            put(c_pc, ts, cloud)
            image = t1[IMG](
                header=hdr(ts, "camera_color_left"),
                height=6,
                width=8,
                encoding="rgb8",
                is_bigendian=0,
                step=24,
                data=rgb.reshape(-1),
            )
            put(c_im, ts + 0.01, image)
            info = t1["sensor_msgs/msg/CameraInfo"](
                header=hdr(ts, "camera_color_left"),
                height=6,
                width=8,
                distortion_model="plumb_bob",
                D=np.zeros(5),
                K=np.array([5.0, 0, 4, 0, 5, 3, 0, 0, 1]),
                R=np.eye(3).ravel(),
                P=np.zeros(12),
                binning_x=0,
                binning_y=0,
                roi=t1["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False),
            )
            put(c_ci, ts, info)

    reader = RosbagSource(path)
    assert (reader.map_frame, reader.lidar_frame) == ("world", "velo_link")
    frames = list(reader)
    assert len(frames) == 4
    for j, frame in enumerate(frames):
        assert frame.stamp == pytest.approx(scan_stamp(j), abs=1e-6)
        np.testing.assert_array_equal(frame.points, points)
        np.testing.assert_array_equal(frame.image, rgb)
        expected = world_base(scan_stamp(j)) @ T_BASE_IMU @ T_IMU_VELO
        np.testing.assert_allclose(frame.pose, expected, atol=1e-9)
    # the camera tf is in /tf (not static) in this bag: no calibration rather than a guess
    assert reader.calibration is None


def test_store_is_jazzy():
    assert "sensor_msgs/msg/CompressedImage" in STORE.types


def _pairs(stream, tolerance=0.05, window=2.0):
    return [
        (a, None if p is None else p[1])
        for a, _, p in pair_by_stamp(iter(stream), "scan", "img", tolerance, window)
    ]


def test_pairing_is_order_independent_within_the_window():
    # images recorded 0.5 s after their scans (a slow camera pipeline), one image missing
    stream = [
        ("scan", 0.0, "s0"),
        ("scan", 0.1, "s1"),
        ("scan", 0.2, "s2"),
        ("scan", 0.3, "s3"),
        ("img", 0.01, "i0"),
        ("img", 0.12, "i1"),
        ("img", 0.31, "i3"),
    ]
    assert _pairs(stream) == [(0.0, "i0"), (0.1, "i1"), (0.2, None), (0.3, "i3")]
    # the nearest image wins, ties within the tolerance go to the closer one
    stream = [("img", 0.96, "a"), ("img", 0.99, "b"), ("scan", 1.0, "s"), ("img", 1.02, "c")]
    assert _pairs(stream) == [(1.0, "b")]


def test_pairing_gives_up_after_the_window():
    # the camera stops: scans are released as unpaired once the stream is `window` ahead
    stream = [("img", 0.0, "i0"), ("scan", 0.0, "s0")]
    stream += [("scan", 0.1 * k, f"s{k}") for k in range(1, 40)]
    stream += [("img", 0.5, "late")]  # arrives after the window for scan 0.5 has passed
    pairs = _pairs(stream, window=1.0)
    assert pairs[0] == (0.0, "i0")
    assert [p for _, p in pairs[1:]] == [None] * 39
    assert [round(a, 1) for a, _ in pairs] == [round(0.1 * k, 1) for k in range(40)]
