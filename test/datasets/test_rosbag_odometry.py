"""Odometry in bags: the writer's layout, the reader's odometry_source, truth kept apart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rosbag_helpers import T as MSG
from rosbag_helpers import cloud_msg, header, tf_message, transform_stamped, write_raw_bag
from rosbags.highlevel import AnyReader
from scipy.spatial.transform import Rotation
from source_helpers import FakeSource, pose

from liploc_ros.cli import main
from liploc_ros.datasets.base import Frame
from liploc_ros.datasets.odometry import OdometryErrorModel, simulate_odometry
from liploc_ros.datasets.rosbag_reader import RosbagSource
from liploc_ros.datasets.rosbag_writer import DEFAULT_T_BASE_LIDAR, write_bag
from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
from liploc_ros.datasets.synthetic.config import TownConfig
from liploc_ros.errors import DatasetError
from liploc_ros.geometry import invert_transform, planar, relative_steps

T0 = 1_700_000_000.0
TFM, ODOM, PC2 = "tf2_msgs/msg/TFMessage", "nav_msgs/msg/Odometry", "sensor_msgs/msg/PointCloud2"


class OdomSource(FakeSource):
    """FakeSource with a drifting odometry, labelled like the synthetic world's."""

    def __init__(self, n: int = 6, **kw) -> None:
        super().__init__(n, **kw)
        self._odometry = simulate_odometry(self._poses, (4, 2))

    @property
    def odometry(self) -> np.ndarray:
        return self._odometry.copy()

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        frame = super().frame(index, image=image, points=points)
        meta = {**frame.meta, "odometry": "simulated", "odometry_model": "test model"}
        return dataclasses.replace(frame, odometry=self._odometry[index].copy(), meta=meta)


def _messages(path, topic):
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(conns)]


@pytest.fixture(scope="module")
def odom_bag(tmp_path_factory):
    source = OdomSource()
    return source, write_bag(source, tmp_path_factory.mktemp("b") / "run", progress=False)


def test_writer_puts_odometry_on_tf_and_odom_and_truth_on_its_own_topic(odom_bag):
    source, path = odom_bag
    edges = {
        (t.header.frame_id, t.child_frame_id) for m in _messages(path, "/tf") for t in m.transforms
    }
    assert edges == {("odom", "base_link")}  # base_link has one parent: no map -> base_link
    truth = _messages(path, "/ground_truth/odom")
    odom = _messages(path, "/odom")
    assert len(truth) == len(odom) == len(source)
    assert {(m.header.frame_id, m.child_frame_id) for m in truth} == {("map", "base_link")}
    assert {(m.header.frame_id, m.child_frame_id) for m in odom} == {("odom", "base_link")}
    # the twist is the motion since the previous frame, in base_link, over the stamps' step
    T_odom_base = source.odometry @ invert_transform(DEFAULT_T_BASE_LIDAR)
    for k in range(1, len(odom)):
        motion = invert_transform(T_odom_base[k - 1]) @ T_odom_base[k]
        twist = odom[k].twist.twist
        got = [twist.linear.x, twist.linear.y, twist.linear.z]
        dt = source.stamps[k] - source.stamps[k - 1]  # 0.1 s up to float rounding
        np.testing.assert_allclose(got, motion[:3, 3] / dt, atol=1e-6)
        yaw_rate = Rotation.from_matrix(motion[:3, :3]).as_rotvec()[2] / dt
        assert twist.angular.z == pytest.approx(yaw_rate, abs=1e-6)
    with AnyReader([path]) as reader:
        custom = reader.readers[0].storage.metadata.custom
    assert custom["liploc_ros.odometry"] == "simulated"
    assert custom["liploc_ros.odometry_model"] == "test model"


def test_reader_gives_truth_from_the_topic_and_odometry_from_tf_or_topic(odom_bag):
    source, path = odom_bag
    auto = RosbagSource(path)
    assert (auto.pose_source, auto.pose_topic, auto.map_frame) == (
        "topic",
        "/ground_truth/odom",
        "map",
    )
    assert (auto.odometry_track.source, auto.odometry_track.frame) == ("tf", "odom")
    by_tf = list(auto)
    topic = RosbagSource(path, odometry_source="topic")
    assert (topic.odometry_track.source, topic.odometry_track.topic) == ("topic", "/odom")
    by_topic = list(topic)
    assert len(by_tf) == len(by_topic) == len(source)
    for a, b in zip(by_tf, by_topic, strict=True):
        want = source[a.index]
        np.testing.assert_allclose(a.pose, want.pose, atol=1e-9)  # the truth, not the drift
        np.testing.assert_allclose(a.odometry, want.odometry, atol=1e-9)
        np.testing.assert_allclose(a.odometry, b.odometry, atol=1e-6)
        assert a.meta["odometry"] == b.meta["odometry"] == "simulated"  # from the metadata
    # the odometry's motion is the source's, and not the truth's (it drifts)
    got = relative_steps(planar(np.stack([f.odometry for f in by_tf])))
    np.testing.assert_allclose(got, relative_steps(planar(source.odometry)), atol=1e-9)
    assert not np.allclose(got, relative_steps(planar(source.poses)), atol=1e-3)
    none = list(RosbagSource(path, odometry_source="none"))
    assert all(f.odometry is None and "odometry" not in f.meta for f in none)
    # asking tf for the poses gives the drifting tree (warned), as asked
    drifting = list(RosbagSource(path, pose_source="tf"))
    np.testing.assert_allclose(drifting[3].pose, source.odometry[3], atol=1e-9)


def test_bag_without_odometry_keeps_todays_layout(tmp_path):
    source = FakeSource(4)
    path = write_bag(source, tmp_path / "plain", progress=False)
    edges = {
        (t.header.frame_id, t.child_frame_id) for m in _messages(path, "/tf") for t in m.transforms
    }
    assert edges == {("map", "base_link")}
    reader = RosbagSource(path)
    assert (reader.pose_source, reader.odometry_track.source) == ("tf", "none")
    frames = list(reader)
    assert all(f.odometry is None and "odometry" not in f.meta for f in frames)
    np.testing.assert_allclose(frames[2].pose, source[2].pose, atol=1e-12)
    # a source with odometry, written without it: the same layout
    plain = write_bag(OdomSource(4), tmp_path / "off", progress=False, odometry=False)
    with AnyReader([plain]) as bag:
        assert "/odom" not in {c.topic for c in bag.connections}
    assert RosbagSource(plain).pose_source == "tf"
    with pytest.raises(DatasetError, match="odometry_source='tf'"):
        RosbagSource(path, odometry_source="tf")
    with pytest.raises(DatasetError, match="odometry_source='topic'"):
        RosbagSource(path, odometry_source="topic")


def test_streaming_source_keeps_its_odometry_through_a_second_bag(odom_bag, tmp_path):
    source, path = odom_bag
    copy = write_bag(RosbagSource(path), tmp_path / "copy", storage="sqlite3", progress=False)
    frames = list(RosbagSource(copy))
    for frame in frames:
        np.testing.assert_allclose(frame.pose, source[frame.index].pose, atol=1e-9)
        np.testing.assert_allclose(frame.odometry, source.odometry[frame.index], atol=1e-9)


def _kitti2mcap_like(path, *, odom_topic: bool, odom_span: int = 6):
    """/tf map -> base_link (OXTS), /tf_static base_link -> velodyne, clouds; optionally a
    wheel odometry on /odom covering the first ``odom_span`` scans."""
    T_base_velo = pose(0.0, (0.8, 0.0, 1.7))
    msgs = [
        (
            "/tf_static",
            TFM,
            T0,
            tf_message([transform_stamped(T0, "base_link", "velodyne", T_base_velo)]),
        )
    ]
    rng = np.random.default_rng(0)
    truth, odom = [], []
    for i in range(6):
        t = T0 + 0.1 * i
        T_map_base = pose(3.0 * i, (2.0 * i, 0.1 * i, 0.0))
        T_odom_base = pose(3.3 * i, (2.1 * i, 0.0, 0.0))
        truth.append(T_map_base @ T_base_velo)
        odom.append(T_odom_base @ T_base_velo)
        msgs.append(
            ("/tf", TFM, t, tf_message([transform_stamped(t, "map", "base_link", T_map_base)]))
        )
        if odom_topic and i < odom_span:
            q = Rotation.from_matrix(T_odom_base[:3, :3]).as_quat()
            msg = MSG[ODOM](
                header=header(t, "odom"),
                child_frame_id="base_link",
                pose=MSG["geometry_msgs/msg/PoseWithCovariance"](
                    pose=MSG["geometry_msgs/msg/Pose"](
                        position=MSG["geometry_msgs/msg/Point"](*T_odom_base[:3, 3]),
                        orientation=MSG["geometry_msgs/msg/Quaternion"](*q),
                    ),
                    covariance=np.zeros(36),
                ),
                twist=MSG["geometry_msgs/msg/TwistWithCovariance"](
                    twist=MSG["geometry_msgs/msg/Twist"](
                        linear=MSG["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0),
                        angular=MSG["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0),
                    ),
                    covariance=np.zeros(36),
                ),
            )
            msgs.append(("/odom", ODOM, t, msg))
        points = rng.normal(size=(50, 4)).astype(np.float32)
        msgs.append(("/kitti/velodyne_points", PC2, t + 0.01, cloud_msg(t, "velodyne", points)))
    return write_raw_bag(path, msgs), np.stack(truth), np.stack(odom)


def test_kitti2mcap_like_bag_is_read_as_before(tmp_path):
    path, truth, _ = _kitti2mcap_like(tmp_path / "k", odom_topic=False)
    reader = RosbagSource(path)
    assert (reader.pose_source, reader.map_frame, reader.lidar_frame) == ("tf", "map", "velodyne")
    assert reader.odometry_track.source == "none"
    frames = list(reader)
    assert len(frames) == 6
    for frame in frames:
        assert frame.odometry is None
        np.testing.assert_allclose(frame.pose, truth[frame.index], atol=1e-9)


def test_a_recorded_odom_topic_beside_a_map_tree(tmp_path):
    path, truth, odom = _kitti2mcap_like(tmp_path / "k", odom_topic=True, odom_span=4)
    reader = RosbagSource(path)
    assert reader.pose_source == "tf"  # the map tree stays the truth
    track = reader.odometry_track
    assert (track.source, track.topic, track.frame) == ("topic", "/odom", "odom")
    frames = list(reader)
    assert len(frames) == 6  # frames outside the odometry's coverage are kept, without
    for frame in frames:
        np.testing.assert_allclose(frame.pose, truth[frame.index], atol=1e-9)
        if frame.index < 4:
            np.testing.assert_allclose(frame.odometry, odom[frame.index], atol=1e-9)
            assert frame.meta["odometry"] == "recorded"
        else:
            assert frame.odometry is None
    assert reader.stats.no_odometry == 2
    with pytest.raises(DatasetError, match="no odometry topic '/wheels'"):
        RosbagSource(path, odom_topic="/wheels")


def test_robot_bag_with_only_odometry_keeps_it_as_poses(tmp_path):
    """tf odom -> base_link and nothing else: the poses are the odometry's, as before."""
    T_base_velo = pose(0.0, (0.0, 0.0, 1.5))
    msgs = [
        (
            "/tf_static",
            TFM,
            T0,
            tf_message([transform_stamped(T0, "base_link", "velo", T_base_velo)]),
        )
    ]
    for i in range(4):
        t = T0 + 0.1 * i
        msgs.append(
            (
                "/tf",
                TFM,
                t,
                tf_message([transform_stamped(t, "odom", "base_link", pose(i, (i, 0, 0)))]),
            )
        )
        msgs.append(("/points", PC2, t, cloud_msg(t, "velo", np.ones((5, 4), np.float32))))
    reader = RosbagSource(write_raw_bag(tmp_path / "r", msgs))
    assert (reader.pose_source, reader.map_frame) == ("tf", "odom")
    assert reader.odometry_track.source == "tf"
    for frame in reader:
        np.testing.assert_allclose(frame.odometry, frame.pose, atol=1e-12)


def test_synth_bag_odometry_follows_the_error_model_options(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["synth", "--out", str(out), "--seed", "2", "--traversals", "1", "--frames", "4",
            "--format", "kitti,bag", "--odom-scale-error", "0.1", "--odom-yaw-drift", "0.5",
            "--odom-noise", "0", "--odom-yaw-noise", "0", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "odometry: simulated, seeded per traversal: scale error +-10%" in printed
    drive = SyntheticDrive(make_town(TownConfig(seed=2)), 0, 4)
    model = OdometryErrorModel(0.1, 0.5, 0.0, 0.0)
    want = simulate_odometry(drive.poses, (2, 0), model)
    reader = RosbagSource(out / "bags" / "t0")  # written through the KITTI reader's copy
    frames = list(reader.iter_frames(image=False, points=False))
    assert reader.pose_source == "topic"
    got = np.stack([f.odometry for f in frames])
    np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(np.stack([f.pose for f in frames]), drive.poses, atol=1e-9)
    steps, truth_steps = relative_steps(planar(got)), relative_steps(planar(drive.poses))
    np.testing.assert_allclose(np.abs(steps[:, 0] / truth_steps[:, 0] - 1), 0.1, atol=1e-9)
    with AnyReader([out / "bags" / "t0"]) as bag:
        assert (
            "scale error +-10%"
            in bag.readers[0].storage.metadata.custom["liploc_ros.odometry_model"]
        )

    assert (
        main([*args[:-1], "--no-odometry", "--overwrite", "--format", "bag", "--no-progress"]) == 0
    )
    assert "odometry: none" in capsys.readouterr().out
    reader = RosbagSource(out / "bags" / "t0")
    assert (reader.pose_source, reader.odometry_track.source) == ("tf", "none")


def test_kitti2bag_writes_the_simulated_odometry_unless_asked_not_to(tmp_path, capsys):
    from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry

    write_kitti_odometry(FakeSource(4, start=0.0), tmp_path / "kitti", "00", progress=False)
    kitti = KittiOdometry(tmp_path / "kitti", "00")
    base = ["kitti2bag", str(tmp_path / "kitti"), "--time-offset", "10", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert "odometry: SIMULATED from the poses" in capsys.readouterr().out
    reader = RosbagSource(tmp_path / "a")
    assert (reader.pose_source, reader.odometry_track.source) == ("topic", "tf")
    for frame in reader.iter_frames(image=False, points=False):
        assert frame.meta["odometry"] == "simulated"
        np.testing.assert_allclose(frame.odometry, kitti.odometry[frame.index], atol=1e-9)
        np.testing.assert_allclose(frame.pose, kitti.poses[frame.index], atol=1e-9)
    assert main([*base, "--out", str(tmp_path / "b"), "--no-odometry"]) == 0
    assert "odometry: none" in capsys.readouterr().out
    reader = RosbagSource(tmp_path / "b")
    assert (reader.pose_source, reader.odometry_track.source) == ("tf", "none")
