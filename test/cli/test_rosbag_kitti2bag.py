"""`liploc kitti2bag`: a KITTI odometry folder -> a ROS 2 bag, read back end to end."""

from __future__ import annotations

import numpy as np
import pytest
from source_helpers import FakeSource

from liploc_ros.cli import main
from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.rosbag_reader import RosbagSource, bag_topics


@pytest.fixture
def kitti_root(tmp_path):
    root = tmp_path / "kitti"
    source = FakeSource(4, start=0.0)
    write_kitti_odometry(source, root, "00", progress=False)
    return root


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_kitti2bag_end_to_end(tmp_path, kitti_root, capsys, storage):
    out = tmp_path / "bags" / "seq00"
    code = main(
        [
            "kitti2bag",
            str(kitti_root),
            "--sequence",
            "00",
            "--out",
            str(out),
            "--storage",
            storage,
            "--image-encoding",
            "bgr8",
            "--time-offset",
            "1000",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote 4 frames (0.3 s, with poses) of kitti/00 to {out}" in printed
    assert "MiB" in printed
    topics = bag_topics(out)
    assert topics["/kitti/velo/pointcloud"] == "sensor_msgs/msg/PointCloud2"
    assert topics["/ground_truth/odom"] == "nav_msgs/msg/Odometry"

    kitti = KittiOdometry(kitti_root, "00")
    reader = RosbagSource(out)
    frames = list(reader)
    assert len(frames) == 4
    for frame in frames:
        want = kitti[frame.index]
        assert frame.stamp == pytest.approx(want.stamp + 1000.0, abs=1e-9)
        np.testing.assert_array_equal(frame.image, want.image)
        np.testing.assert_array_equal(frame.points, want.points)
        np.testing.assert_allclose(frame.pose, want.pose, atol=1e-9)
    np.testing.assert_allclose(
        reader.calibration.T_lidar_camera, kitti.calibration.T_lidar_camera, atol=1e-9
    )
    np.testing.assert_allclose(reader.calibration.camera_matrix, kitti.calibration.camera_matrix)


def test_kitti2bag_limit_jpeg_and_errors(tmp_path, kitti_root, capsys):
    out = tmp_path / "b"
    args = [
        "kitti2bag",
        str(kitti_root),
        "--out",
        str(out),
        "--limit",
        "2",
        "--image-encoding",
        "jpeg",
        "--no-progress",
    ]
    assert main(args) == 0
    assert len(list(RosbagSource(out))) == 2
    # an existing bag is an error unless --overwrite
    assert main(args) == 1
    assert "already exists; pass overwrite=True" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--limit", "3"]) == 0
    assert len(list(RosbagSource(out))) == 3
    # a missing sequence is a clear error, not a traceback
    assert main(["kitti2bag", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")]) == 1
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
