"""write_bag -> RosbagSource: what goes in comes back out (mcap and sqlite3)."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from source_helpers import FakeSource, pose

from liploc_ros.datasets.interpolation import make_transform
from liploc_ros.datasets.rosbag_reader import RosbagSource, bag_topics
from liploc_ros.datasets.rosbag_writer import DEFAULT_T_BASE_LIDAR, BagTopics, write_bag
from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.geometry import invert_transform


def _check_frames(frames, source, *, exact_images=True, image=True, points=True):
    assert [f.index for f in frames] == list(range(len(source)))
    for got in frames:
        want = source[got.index]
        assert got.stamp == pytest.approx(want.stamp, abs=1e-6)
        if image:
            assert got.image.dtype == np.uint8
            assert got.image.shape == want.image.shape
            if exact_images:
                np.testing.assert_array_equal(got.image, want.image)
            else:  # JPEG is lossy: only close
                assert np.abs(got.image.astype(int) - want.image).mean() < 3.0
        else:
            assert got.image is None
        if points:
            np.testing.assert_array_equal(got.points, want.points)
        else:
            assert got.points is None
        np.testing.assert_allclose(got.pose, want.pose, atol=1e-12)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_roundtrip_is_exact(tmp_path, storage, encoding):
    source = FakeSource(5)
    path = write_bag(
        source, tmp_path / "run", storage=storage, image_encoding=encoding, progress=False
    )
    assert path == tmp_path / "run"
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (path / f"run{suffix}").is_file()
    assert (path / "metadata.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging left behind

    reader = RosbagSource(path)
    assert reader.anchor == "lidar"
    assert reader.pose_source == "tf"
    assert (reader.map_frame, reader.lidar_frame) == ("map", "velo_link")
    _check_frames(list(reader), source)
    assert reader.stats.frames == 5
    assert reader.stats.dropped == 0

    calib = reader.calibration
    assert calib is not None
    assert calib.image_size == (120, 40)
    np.testing.assert_allclose(calib.camera_matrix, source.calibration.camera_matrix)
    np.testing.assert_allclose(calib.T_lidar_camera, source.calibration.T_lidar_camera, atol=1e-12)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_jpeg_roundtrip_is_close(tmp_path, storage):
    source = FakeSource(4, smooth=True)
    path = write_bag(
        source, tmp_path / "run", storage=storage, image_encoding="jpeg", progress=False
    )
    topics = bag_topics(path)
    assert topics["/kitti/camera_color_left/image_raw/compressed"] == (
        "sensor_msgs/msg/CompressedImage"
    )
    reader = RosbagSource(path)
    assert reader.image_topic == "/kitti/camera_color_left/image_raw/compressed"
    _check_frames(list(reader), source, exact_images=False)


def test_modalities_and_anchors(tmp_path):
    source = FakeSource(5)
    path = write_bag(source, tmp_path / "run", progress=False)
    reader = RosbagSource(path)
    _check_frames(list(reader.iter_frames(image=False)), source, image=False)
    _check_frames(list(reader.iter_frames(points=False)), source, points=False)
    camera = RosbagSource(path, anchor="camera")
    frames = list(camera)
    _check_frames(frames, source)
    assert frames[0].meta["anchor"] == "camera"


def test_odometry_pose_topic_gives_the_same_poses(tmp_path):
    source = FakeSource(5)
    mount = pose(3.0, (0.5, -0.1, 1.2))
    path = write_bag(source, tmp_path / "run", progress=False, T_base_lidar=mount)
    reader = RosbagSource(path, pose_source="topic")
    assert reader.pose_topic == "/ground_truth/odom"
    _check_frames(list(reader), source)
    # the odometry is base_link's pose: taken as the LiDAR's, it is off by the mount
    wrong = list(RosbagSource(path, pose_source="topic", pose_frame="velo_link"))
    np.testing.assert_allclose(wrong[1].pose @ mount, source.poses[1], atol=1e-12)


def test_tf_and_odometry_messages_hold_the_base_link_pose(tmp_path):
    source = FakeSource(3)
    path = write_bag(source, tmp_path / "run", progress=False, time_offset=100.0)
    T_lidar_base = invert_transform(DEFAULT_T_BASE_LIDAR)
    with AnyReader([path]) as reader:
        tf = [c for c in reader.connections if c.topic == "/tf"]
        static = [c for c in reader.connections if c.topic == "/tf_static"]
        odom = [c for c in reader.connections if c.topic == "/ground_truth/odom"]
        assert static[0].ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"
        for k, (conn, ns, raw) in enumerate(reader.messages(connections=tf)):
            msg = reader.deserialize(raw, conn.msgtype).transforms[0]
            assert (msg.header.frame_id, msg.child_frame_id) == ("map", "base_link")
            assert ns == pytest.approx((source.stamps[k] + 100.0) * 1e9, abs=1e3)
            tr, q = msg.transform.translation, msg.transform.rotation
            T = make_transform((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
            np.testing.assert_allclose(T, source.poses[k] @ T_lidar_base, atol=1e-12)
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(static)]
        assert len(msgs) == 1
        pairs = [(t.header.frame_id, t.child_frame_id) for t in msgs[0].transforms]
        assert pairs == [("base_link", "velo_link"), ("velo_link", "camera_color_left")]
        assert sum(1 for _ in reader.messages(connections=odom)) == 3
    frames = list(RosbagSource(path))
    assert frames[0].stamp == pytest.approx(source.stamps[0] + 100.0, abs=1e-6)


def test_frames_without_pose_are_not_in_tf_and_get_dropped_with_a_tight_gap(tmp_path):
    source = FakeSource(5, unposed=(2,))
    path = write_bag(source, tmp_path / "run", progress=False)
    # the default gap limit (1 s) interpolates across the missing sample ...
    assert len(list(RosbagSource(path))) == 5
    # ... a tight one drops the frame, and counts it
    reader = RosbagSource(path, max_pose_gap=0.15)
    frames = list(reader)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.stamp for f in frames] == pytest.approx(source.stamps[[0, 1, 3, 4]], abs=1e-6)
    assert reader.stats.no_pose == 1
    assert reader.stats.anchors == 5


def test_limit_and_no_calibration(tmp_path):
    source = FakeSource(5)
    source.calibration = None
    path = write_bag(source, tmp_path / "run", progress=False, limit=2)
    reader = RosbagSource(path)
    assert len(list(reader)) == 2
    assert reader.calibration is None
    assert "/kitti/camera_color_left/camera_info" not in bag_topics(path)


def test_custom_topics(tmp_path):
    topics = BagTopics(
        image="/cam/image",
        points="/lidar/points",
        lidar_frame="lidar",
        camera_frame="cam_optical",
        map_frame="world",
    )
    path = write_bag(FakeSource(3), tmp_path / "run", topics=topics, progress=False)
    reader = RosbagSource(path)
    assert (reader.image_topic, reader.points_topic) == ("/cam/image", "/lidar/points")
    assert (reader.map_frame, reader.lidar_frame) == ("world", "lidar")
    assert len(list(reader)) == 3
    with pytest.raises(ConfigError, match="absolute topic"):
        BagTopics(image="cam/image")
    with pytest.raises(ConfigError, match="frame ids must differ"):
        BagTopics(lidar_frame="base_link")


def test_existing_bag_is_kept_unless_overwrite(tmp_path):
    path = write_bag(FakeSource(2, seed=1), tmp_path / "run", progress=False)
    before = sorted(p.read_bytes() for p in path.iterdir())
    with pytest.raises(DatasetError, match="already exists; pass overwrite=True"):
        write_bag(FakeSource(3), path, progress=False)
    assert sorted(p.read_bytes() for p in path.iterdir()) == before
    write_bag(FakeSource(3), path, progress=False, overwrite=True)
    assert len(list(RosbagSource(path))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_never_deletes_what_is_not_a_bag(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a ROS 2 bag directory"):
        write_bag(FakeSource(2), precious, progress=False, overwrite=True)
    assert (precious / "todo.txt").read_text() == "keep me"


def test_a_failed_write_leaves_nothing_and_keeps_the_old_bag(tmp_path):
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_bag(FakeSource(5, fail_at=3), tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []
    path = write_bag(FakeSource(2), tmp_path / "run", progress=False)
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_bag(FakeSource(5, fail_at=3), path, progress=False, overwrite=True)
    assert len(list(RosbagSource(path))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="storage"):
        write_bag(FakeSource(1), tmp_path / "a", storage="zip", progress=False)
    with pytest.raises(ConfigError, match="image_encoding"):
        write_bag(FakeSource(1), tmp_path / "a", image_encoding="png", progress=False)
    with pytest.raises(ConfigError, match="T_base_lidar is not a rigid"):
        write_bag(FakeSource(1), tmp_path / "a", T_base_lidar=np.eye(4) * 2, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bag_to_bag_conversion(tmp_path):
    source = FakeSource(4)
    first = write_bag(source, tmp_path / "a", progress=False)
    second = write_bag(RosbagSource(first), tmp_path / "b", storage="sqlite3", progress=False)
    reader = RosbagSource(second)
    _check_frames(list(reader), source)
    np.testing.assert_allclose(
        reader.calibration.T_lidar_camera, source.calibration.T_lidar_camera, atol=1e-12
    )
