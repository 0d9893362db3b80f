"""KITTI-360 reader and writer: round trips, partial poses, hand-checked poses, bad input."""

from __future__ import annotations

import calendar
import functools
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from source_helpers import FakeSource, rewrite_line

from liploc_ros.datasets.base import Calibration
from liploc_ros.datasets.kitti360 import (
    Kitti360,
    drive_name,
    format_timestamp,
    parse_timestamp,
    write_kitti360,
)
from liploc_ros.errors import DatasetError

DRIVE = "2013_05_28_drive_0000_sync"
# Camera axes in the LiDAR frame: optical axis = LiDAR x, image right = -y, image down = -z.
R_LIDAR_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def kitti360_like_calibration(width: int = 120, height: int = 40) -> Calibration:
    T = np.eye(4)
    T[:3, :3] = (
        R_LIDAR_CAM @ Rotation.from_euler("xyz", [5.0, -2.5, 1.0], degrees=True).as_matrix()
    )
    T[:3, 3] = [0.80, 0.30, -0.18]
    K = np.array([[55.2, 0.0, 61.5], [0.0, 55.2, 18.3], [0.0, 0.0, 1.0]])
    return Calibration(camera_matrix=K, image_size=(width, height), T_lidar_camera=T)


def _world_curve(i: int) -> np.ndarray:
    """A smooth path in a z-up world, far from its origin, turning about every axis."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [0.02 * i, -0.01 * i, 1.2 + 0.15 * i]).as_matrix()
    T[:3, 3] = [1234.5 + 3 * i, 3456.75 - i, 115.0 + 0.1 * i]
    return T


#: KITTI-360-like absolute stamps (2013), which the text format keeps to 1 ns
kitti360_source = functools.partial(
    FakeSource, start=1369730762.846905, jitter=1e-3, curve=_world_curve, points=(50, 200)
)


# -- round trip -------------------------------------------------------------------------------


def test_write_then_read_keeps_frames_and_partial_poses(tmp_path: Path) -> None:
    source = kitti360_source(calibration=kitti360_like_calibration(), unposed=(1, 3))
    assert write_kitti360(source, tmp_path, 0, progress=False) == tmp_path
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    poses_txt = (tmp_path / "data_poses" / DRIVE / "poses.txt").read_text().splitlines()
    assert [line.split()[0] for line in poses_txt] == ["0", "2", "4"]

    loaded = Kitti360(tmp_path, 0)
    assert loaded.name == f"kitti360/{DRIVE}"
    assert len(loaded) == 5
    np.testing.assert_array_equal(loaded.frame_ids, np.arange(5))
    for i in range(5):
        frame = loaded[i]
        np.testing.assert_array_equal(frame.image, source.images[i])
        np.testing.assert_array_equal(frame.points, source.points[i])
        assert frame.meta["frame_id"] == i
    # timestamps.txt has a resolution of 1 ns, and a float64 of 1.4e9 s one of 2.4e-7 s.
    np.testing.assert_allclose(loaded.stamps, source.stamps, rtol=0, atol=1e-6)
    # Unposed frames: None in the frame, NaN in the array.
    assert loaded[1].pose is None
    assert loaded[3].pose is None
    assert np.isnan(loaded.poses[[1, 3]]).all()
    # Poses go through two 4x4 products with inverses on the way out and back, at ~3.5 km
    # from the origin: exact to ~1e-12, not bitwise.
    posed = [0, 2, 4]
    np.testing.assert_allclose(loaded.poses[posed], source.poses[posed], rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded[2].pose, source.poses[2], rtol=0, atol=1e-9)
    calib = source.calibration
    np.testing.assert_array_equal(loaded.calibration.camera_matrix, calib.camera_matrix)
    assert loaded.calibration.image_size == (120, 40)
    np.testing.assert_allclose(
        loaded.calibration.T_lidar_camera, calib.T_lidar_camera, rtol=0, atol=1e-12
    )


def test_cam0_to_world_is_the_fallback_and_agrees(tmp_path: Path) -> None:
    source = kitti360_source(calibration=kitti360_like_calibration(), unposed=(0,))
    write_kitti360(source, tmp_path, 3, progress=False)
    from_poses = Kitti360(tmp_path, 3)
    assert from_poses.imu_poses is not None
    (tmp_path / "data_poses" / "2013_05_28_drive_0003_sync" / "poses.txt").unlink()
    from_cam0 = Kitti360(tmp_path, "2013_05_28_drive_0003_sync")
    assert from_cam0.poses_path.name == "cam0_to_world.txt"
    assert from_cam0.imu_poses is None
    np.testing.assert_allclose(from_cam0.poses[1:], source.poses[1:], rtol=0, atol=1e-9)
    assert np.isnan(from_cam0.poses[0]).all()


def test_drive_without_poses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_kitti360(kitti360_source(calibration=kitti360_like_calibration(), posed=False), tmp_path)
    assert not (tmp_path / "data_poses" / DRIVE).exists()
    with caplog.at_level(logging.INFO, logger="liploc_ros.datasets.kitti360"):
        loaded = Kitti360(tmp_path, 0)
    assert loaded.poses is None
    assert loaded[4].pose is None
    assert "no poses" in caplog.text


@pytest.mark.parametrize("drive", [0, "0", "0000", DRIVE])
def test_drive_names(drive: str | int) -> None:
    assert drive_name(drive) == DRIVE


@pytest.mark.parametrize("drive", [-1, 10000, "drive0", "../x", "12345"])
def test_bad_drive_names(drive: str | int) -> None:
    with pytest.raises(DatasetError, match="KITTI-360 drive"):
        drive_name(drive)


def test_timestamp_text() -> None:
    expected = calendar.timegm((2013, 5, 28, 8, 46, 2)) + 0.846905024
    assert parse_timestamp("2013-05-28 08:46:02.846905024") == pytest.approx(expected, abs=1e-6)
    # A float64 near 1.4e9 s resolves ~0.24 us, so nanoseconds survive only approximately.
    assert format_timestamp(expected).startswith("2013-05-28 08:46:02.8469")
    half = calendar.timegm((2013, 5, 28, 8, 46, 2)) + 0.5
    assert format_timestamp(half) == "2013-05-28 08:46:02.500000000"
    assert format_timestamp(0.1) == "1970-01-01 00:00:00.100000000"
    assert parse_timestamp(format_timestamp(0.1)) == 0.1
    assert format_timestamp(-0.25) == "1969-12-31 23:59:59.750000000"


# -- a hand-written drive ----------------------------------------------------------------------


def row(T: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in np.asarray(T)[:3, :4].ravel())


def rigid(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


# Camera 0 in the velodyne frame and in the pose frame: both with the camera looking along x,
# at (0.8, 0.3, -0.2) and (1.5, 0, 0.7). So the LiDAR is the pose frame shifted by
# (1.5, 0, 0.7) - (0.8, 0.3, -0.2) = (0.7, -0.3, 0.9), axes aligned.
T_VELO_CAM0 = rigid(R_LIDAR_CAM, [0.8, 0.3, -0.2])
T_POSE_CAM0 = rigid(R_LIDAR_CAM, [1.5, 0.0, 0.7])
# A 90-degree rectifying rotation about camera x, to see R_rect used (x_rect = R_rect x).
R_RECT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Frame 1: the vehicle at (10, 20, 1) turned 90 degrees left; frame 3: at (-5, 2, 0), straight.
RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
WORLD_POSES = {1: rigid(RZ90, [10, 20, 1]), 3: rigid(np.eye(3), [-5, 2, 0])}
# Worked out by hand: LiDAR = pose frame + (0.7, -0.3, 0.9) in the vehicle's axes, which the
# 90-degree turn makes (0.3, 0.7, 0.9) in the world.
EXPECTED = {1: rigid(RZ90, [10.3, 20.7, 1.9]), 3: rigid(np.eye(3), [-4.3, 1.7, 0.9])}


def make_drive(root: Path, n: int = 5, *, drive: str = DRIVE, stamps: bool = True) -> Path:
    """A tiny drive written by hand (not by the writer under test)."""
    image_dir = root / "data_2d_raw" / drive / "image_00" / "data_rect"
    scan_dir = root / "data_3d_raw" / drive / "velodyne_points" / "data"
    image_dir.mkdir(parents=True)
    scan_dir.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(n):
        cv2.imwrite(str(image_dir / f"{i:010d}.png"), rng.integers(0, 256, (6, 8, 3), np.uint8))
        rng.normal(size=(12, 4)).astype("<f4").tofile(scan_dir / f"{i:010d}.bin")
    if stamps:
        lines = "".join(f"2013-05-28 08:46:{2 + i:02d}.500000000\n" for i in range(n))
        (image_dir.parent / "timestamps.txt").write_text(lines)
    calib = root / "calibration"
    calib.mkdir()
    (calib / "calib_cam_to_velo.txt").write_text(row(T_VELO_CAM0) + "\n")
    (calib / "calib_cam_to_pose.txt").write_text(
        f"image_00: {row(T_POSE_CAM0)}\nimage_01: {row(T_POSE_CAM0)}\n"
    )
    (calib / "perspective.txt").write_text(
        "calib_time: 09-Jan-2012 14:00:15\n"
        "S_rect_00: 8.000000e+00 6.000000e+00\n"
        f"R_rect_00: {' '.join(map(str, R_RECT.ravel()))}\n"
        "P_rect_00: 500 0 4 0 0 500 3 0 0 0 1 0\n"
    )
    poses_dir = root / "data_poses" / drive
    poses_dir.mkdir(parents=True)
    (poses_dir / "poses.txt").write_text(
        "".join(f"{i} {row(T)}\n" for i, T in WORLD_POSES.items())
    )
    return poses_dir


def test_hand_written_drive_gives_the_expected_lidar_poses(tmp_path: Path) -> None:
    make_drive(tmp_path)
    loaded = Kitti360(tmp_path, 0)
    for i, expected in EXPECTED.items():
        np.testing.assert_allclose(loaded.poses[i], expected, rtol=0, atol=1e-12)
    assert np.isnan(loaded.poses[[0, 2, 4]]).all()
    np.testing.assert_allclose(loaded.imu_poses[1], WORLD_POSES[1])
    # Rectified camera in the LiDAR frame: T_velo_cam0 @ inv(R_rect). By hand, the
    # rectified camera's x, y, z axes are LiDAR -y, -x, -z.
    R = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    np.testing.assert_allclose(
        loaded.calibration.T_lidar_camera, rigid(R, [0.8, 0.3, -0.2]), rtol=0, atol=1e-15
    )
    np.testing.assert_array_equal(
        loaded.calibration.camera_matrix, [[500, 0, 4], [0, 500, 3], [0, 0, 1]]
    )
    assert loaded.calibration.image_size == (8, 6)
    start = calendar.timegm((2013, 5, 28, 8, 46, 2)) + 0.5
    np.testing.assert_allclose(loaded.stamps, start + np.arange(5), rtol=0, atol=1e-6)


def test_cam0_to_world_with_rectification(tmp_path: Path) -> None:
    poses_dir = make_drive(tmp_path)
    (poses_dir / "poses.txt").unlink()
    # cam0_to_world is the rectified camera: T_world_pose @ T_pose_cam0 @ inv(R_rect).
    R_rect4 = rigid(R_RECT, [0, 0, 0])
    (poses_dir / "cam0_to_world.txt").write_text(
        "".join(
            f"{i} {' '.join(repr(float(v)) for v in (T @ T_POSE_CAM0 @ R_rect4.T).ravel())}\n"
            for i, T in WORLD_POSES.items()
        )
    )
    loaded = Kitti360(tmp_path, 0)
    for i, expected in EXPECTED.items():
        np.testing.assert_allclose(loaded.poses[i], expected, rtol=0, atol=1e-12)


def test_velodyne_timestamps_and_the_10_hz_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_drive(tmp_path, stamps=False)
    with caplog.at_level(logging.WARNING):
        loaded = Kitti360(tmp_path, 0)
    np.testing.assert_allclose(loaded.stamps, 0.1 * np.arange(5))
    assert "timestamps" in caplog.text
    velodyne_stamps = tmp_path / "data_3d_raw" / DRIVE / "velodyne_points" / "timestamps.txt"
    velodyne_stamps.write_text("".join(f"1970-01-01 00:00:0{i}.25\n" for i in range(5)))
    np.testing.assert_allclose(Kitti360(tmp_path, 0).stamps, 0.25 + np.arange(5))


def test_lenient_mode_keeps_frames_in_both_folders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_drive(tmp_path)
    (tmp_path / "data_3d_raw" / DRIVE / "velodyne_points" / "data" / "0000000003.bin").unlink()
    with pytest.raises(DatasetError, match=r"5 images .* but 4 scans"):
        Kitti360(tmp_path, 0)
    with caplog.at_level(logging.WARNING):
        loaded = Kitti360(tmp_path, 0, strict=False)
    np.testing.assert_array_equal(loaded.frame_ids, [0, 1, 2, 4])
    np.testing.assert_allclose(loaded.poses[1], EXPECTED[1], rtol=0, atol=1e-12)
    assert np.isnan(loaded.poses[[0, 2, 3]]).all()  # frame 3's pose has no frame left
    assert loaded[3].meta["frame_id"] == 4
    assert "0000000003" in caplog.text


# -- bad input ---------------------------------------------------------------------------------


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()


IMAGES = Path("data_2d_raw") / DRIVE / "image_00"
SCANS = Path("data_3d_raw") / DRIVE / "velodyne_points"
POSES = Path("data_poses") / DRIVE / "poses.txt"
CALIB = Path("calibration")

BAD_DRIVES = {
    "no data_rect folder": (lambda r: _remove_tree(r / IMAGES / "data_rect"), "data_rect"),
    "no velodyne folder": (lambda r: _remove_tree(r / SCANS / "data"), "velodyne"),
    "no calib_cam_to_velo": (
        lambda r: (r / CALIB / "calib_cam_to_velo.txt").unlink(),
        "missing KITTI-360 camera 0 -> velodyne calibration",
    ),
    "no perspective.txt": (lambda r: (r / CALIB / "perspective.txt").unlink(), "perspective.txt"),
    "no calib_cam_to_pose": (
        lambda r: (r / CALIB / "calib_cam_to_pose.txt").unlink(),
        "calib_cam_to_pose.txt",
    ),
    "short calib_cam_to_velo": (
        lambda r: (r / CALIB / "calib_cam_to_velo.txt").write_text("1 0 0 0 0 1 0 0\n"),
        "calib_cam_to_velo.txt: expected 12 numbers",
    ),
    "perspective line malformed": (
        lambda r: rewrite_line(r / CALIB / "perspective.txt", 4, "P_rect_00: 500 0 4 0 0 500"),
        "perspective.txt:4: 'P_rect_00' has 6 value(s), expected 12",
    ),
    "image size not whole": (
        lambda r: rewrite_line(r / CALIB / "perspective.txt", 2, "S_rect_00: 8.5 6"),
        "perspective.txt:2: S_rect_00 must be two positive whole numbers",
    ),
    "pose line malformed": (
        lambda r: rewrite_line(r / POSES, 2, "3 1 0 0 0 0 1 0 0 0 0 1 zero"),
        "poses.txt:2: 'zero' is not a number",
    ),
    "pose line without index": (
        lambda r: rewrite_line(r / POSES, 1, "1 0 0 0 0 1 0 0 0 0 1 0"),
        "poses.txt:1: expected a frame index and 12 numbers, found 12",
    ),
    "pose of a missing frame": (
        lambda r: rewrite_line(r / POSES, 2, f"7 {row(np.eye(4))}"),
        "poses.txt: poses refer to 1 frame(s) that do not exist (first: 0000000007",
    ),
    "two poses for a frame": (
        lambda r: rewrite_line(r / POSES, 2, f"1 {row(np.eye(4))}"),
        "poses.txt: frame 1 has several poses",
    ),
    "an image missing": (
        lambda r: (r / IMAGES / "data_rect" / "0000000002.png").unlink(),
        "frame counts disagree: 4 images",
    ),
    "too few timestamps": (
        lambda r: rewrite_line(r / IMAGES / "timestamps.txt", 5, ""),
        "timestamps.txt: frame counts disagree: 4 timestamps but 5 frames",
    ),
    "bad timestamp": (
        lambda r: rewrite_line(r / IMAGES / "timestamps.txt", 3, "2013-05-28T08:46:04"),
        "timestamps.txt:3: bad timestamp",
    ),
    "truncated scan": (
        lambda r: (r / SCANS / "data" / "0000000004.bin").write_bytes(b"\0" * 20),
        "0000000004.bin: size 20 bytes is not a multiple of 16",
    ),
}


@pytest.mark.parametrize("case", BAD_DRIVES, ids=list(BAD_DRIVES))
def test_bad_drives_raise_a_clear_error(tmp_path: Path, case: str) -> None:
    make_drive(tmp_path)
    damage, message = BAD_DRIVES[case]
    damage(tmp_path)
    with pytest.raises(DatasetError) as err:
        Kitti360(tmp_path, 0)
    assert message in str(err.value)


def test_corrupt_png_names_the_file(tmp_path: Path) -> None:
    make_drive(tmp_path)
    path = tmp_path / IMAGES / "data_rect" / "0000000002.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    loaded = Kitti360(tmp_path, 0)
    with pytest.raises(DatasetError, match=r"0000000002\.png: corrupt or unreadable image"):
        loaded[2]


def test_missing_root_and_drive(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        Kitti360(tmp_path / "nowhere", 0)
    make_drive(tmp_path)
    with pytest.raises(DatasetError, match="drive_0009_sync"):
        Kitti360(tmp_path, 9)


# -- writer -------------------------------------------------------------------------------------


def test_drives_share_one_calibration_folder(tmp_path: Path) -> None:
    calibration = kitti360_like_calibration()
    write_kitti360(kitti360_source(calibration=calibration), tmp_path, 0, progress=False)
    second = kitti360_source(seed=1, calibration=calibration)
    write_kitti360(second, tmp_path, 4, progress=False)  # same rig: fine
    np.testing.assert_array_equal(Kitti360(tmp_path, 4)[0].image, second.images[0])
    other_rig = kitti360_source(calibration=kitti360_like_calibration(width=120, height=40))
    other_rig.calibration.T_lidar_camera[0, 3] += 0.1
    with pytest.raises(DatasetError, match=r"calib_cam_to_velo\.txt holds another rig"):
        write_kitti360(other_rig, tmp_path, 5, progress=False)
    # Refused before writing any frame of drive 5.
    assert not list((tmp_path / "data_2d_raw" / "2013_05_28_drive_0005_sync").rglob("*.png"))


def test_writer_refuses_to_clobber_then_overwrites_cleanly(tmp_path: Path) -> None:
    calibration = kitti360_like_calibration()
    write_kitti360(kitti360_source(calibration=calibration), tmp_path, progress=False)
    with pytest.raises(DatasetError, match="already holds data"):
        write_kitti360(kitti360_source(calibration=calibration), tmp_path, progress=False)
    shorter = kitti360_source(3, seed=7, calibration=calibration, posed=False)
    write_kitti360(shorter, tmp_path, progress=False, overwrite=True)
    loaded = Kitti360(tmp_path, 0)
    assert len(loaded) == 3
    assert loaded.poses is None
    np.testing.assert_array_equal(loaded[2].points, shorter.points[2])


def test_writer_without_calibration_logs_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = kitti360_source(calibration=None, unposed=(2,))
    with caplog.at_level(logging.WARNING):
        write_kitti360(source, tmp_path, progress=False)
    assert "no calibration" in caplog.text
    loaded = Kitti360(tmp_path, 0)
    np.testing.assert_allclose(loaded.poses[[0, 1, 3, 4]], source.poses[[0, 1, 3, 4]], atol=1e-9)


def test_synthetic_drive_round_trip(tmp_path: Path) -> None:
    # Imported here: the synthetic world is another module, and a break there should fail
    # only this test.
    from liploc_ros.datasets.synthetic import make_drive

    drive = make_drive(seed=1, traversal=1, frames=3)
    write_kitti360(drive, tmp_path, 7, progress=False)
    loaded = Kitti360(tmp_path, 7)
    assert len(loaded) == 3
    for i in range(3):
        expected, frame = drive[i], loaded[i]
        np.testing.assert_array_equal(frame.image, expected.image)
        np.testing.assert_array_equal(frame.points, expected.points)
        np.testing.assert_allclose(frame.pose, expected.pose, rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded.stamps, drive.stamps, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        loaded.calibration.T_lidar_camera, drive.calibration.T_lidar_camera, rtol=0, atol=1e-12
    )
