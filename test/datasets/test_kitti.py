"""KITTI odometry reader and writer: round trips, hand-checked pose conversion, bad input."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from source_helpers import FakeSource, rewrite_line

from liploc_ros.datasets.base import Calibration, IndexedSource
from liploc_ros.datasets.default_rig import DEFAULT_T_LIDAR_CAMERA, default_calibration
from liploc_ros.datasets.kitti import KittiOdometry, sequence_id, write_kitti_odometry
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import atomic_open, write_bytes_atomic

# Camera axes in the LiDAR frame: optical axis = LiDAR x, image right = -y, image down = -z.
R_LIDAR_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def kitti_like_calibration(width: int = 120, height: int = 40) -> Calibration:
    """A KITTI-like rig: the nominal axes, slightly tilted (as a real Tr is), with an offset."""
    T = np.eye(4)
    T[:3, :3] = (
        R_LIDAR_CAM @ Rotation.from_euler("xyz", [0.4, -0.7, 0.3], degrees=True).as_matrix()
    )
    T[:3, 3] = [0.27, 0.06, -0.08]
    K = np.array([[70.3, 0.0, 60.5], [0.0, 70.3, 19.7], [0.0, 0.0, 1.0]])
    return Calibration(camera_matrix=K, image_size=(width, height), T_lidar_camera=T)


def _far_curve(i: int) -> np.ndarray:
    """A smooth path far from the map origin, slightly pitched."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zy", [0.1 * i + 0.3, 0.01 * np.sin(i)]).as_matrix()
    T[:3, 3] = [350.25 + 2.0 * i, -120.5 + 0.5 * i**2, 3.0 + 0.01 * i]
    return T


#: five frames, scans of 50 to 200 points, stamps off the 10 Hz grid by up to 1 ms
kitti_source = functools.partial(
    FakeSource, start=1000.0, jitter=1e-3, curve=_far_curve, points=(50, 200)
)


def assert_same_frames(source: FakeSource, loaded: IndexedSource) -> None:
    assert len(loaded) == len(source)
    for i in range(len(source)):
        frame = loaded[i]
        assert frame.index == i
        assert frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
        np.testing.assert_array_equal(frame.image, source.images[i])
        assert frame.points.dtype == np.float32
        np.testing.assert_array_equal(frame.points, source.points[i])


# -- round trip -------------------------------------------------------------------------------


def test_write_then_read_gives_the_source_back(tmp_path: Path) -> None:
    source = kitti_source(calibration=kitti_like_calibration())
    seq_dir = write_kitti_odometry(source, tmp_path, 3, progress=False)
    assert seq_dir == tmp_path / "sequences" / "03"
    assert (tmp_path / "poses" / "03.txt").is_file()
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"

    loaded = KittiOdometry(tmp_path, 3)
    assert loaded.name == "kitti/03"
    assert_same_frames(source, loaded)
    # times.txt holds repr() floats, which parse back bit-identical.
    np.testing.assert_array_equal(loaded.stamps, source.stamps)
    # Poses go through Tr @ T @ inv(Tr) on writing and back on reading: two 4x4 products and
    # inverses of ~350 m translations cost ~1e-13, so the match is tight but not bitwise.
    np.testing.assert_allclose(loaded.poses, source.poses, rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded[2].pose, source.poses[2], rtol=0, atol=1e-9)
    calib = source.calibration
    np.testing.assert_array_equal(loaded.calibration.camera_matrix, calib.camera_matrix)
    assert loaded.calibration.image_size == (120, 40)
    np.testing.assert_allclose(
        loaded.calibration.T_lidar_camera, calib.T_lidar_camera, rtol=0, atol=1e-12
    )
    # The written camera-frame poses are the LiDAR poses seen through Tr.
    Tr = loaded.T_cam0_lidar
    np.testing.assert_allclose(
        loaded.camera_poses, Tr @ source.poses @ np.linalg.inv(Tr), rtol=0, atol=1e-9
    )


def test_sequence_folder_works_as_root(tmp_path: Path) -> None:
    source = kitti_source(calibration=kitti_like_calibration())
    seq_dir = write_kitti_odometry(source, tmp_path, "08", progress=False)
    for loaded in (KittiOdometry(seq_dir, None), KittiOdometry(seq_dir.parent, 8)):
        assert loaded.sequence == "08"
        assert loaded.sequence_dir == seq_dir
        assert loaded.poses_path == tmp_path / "poses" / "08.txt"
        np.testing.assert_allclose(loaded.poses, source.poses, rtol=0, atol=1e-9)


def test_frame_skips_modalities_and_checks_range(tmp_path: Path) -> None:
    write_kitti_odometry(
        kitti_source(calibration=kitti_like_calibration()), tmp_path, progress=False
    )
    loaded = KittiOdometry(tmp_path, 0)
    frame = loaded.frame(1, image=False, points=False)
    assert frame.image is None
    assert frame.points is None
    assert frame.pose is not None
    assert frame.meta["file"] == "000001"
    assert loaded[-1].index == 4
    with pytest.raises(IndexError):
        loaded.frame(5)
    with pytest.raises(IndexError):
        loaded[-6]


@pytest.mark.parametrize(("given", "expected"), [(8, "08"), ("8", "08"), ("08", "08"), (12, "12")])
def test_sequence_ids(given: str | int, expected: str) -> None:
    assert sequence_id(given) == expected


@pytest.mark.parametrize("bad", [-1, "", "a/b", ".."])
def test_bad_sequence_ids(bad: str | int) -> None:
    with pytest.raises(DatasetError):
        sequence_id(bad)


# -- a hand-written sequence -------------------------------------------------------------------

# Tr (velodyne -> camera 0): the axis permutation, and the LiDAR origin 0.08 m above
# (camera -y) and 0.27 m behind (camera -z) camera 0.
TR_ROT = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
TR_T = np.array([0.0, -0.08, -0.27])
FX = 700.0


def pose_line(R: np.ndarray, t) -> str:
    return " ".join(repr(float(v)) for v in np.hstack([R, np.reshape(t, (3, 1))]).ravel())


def make_sequence(
    root: Path, n: int = 3, *, seq: str = "00", poses: list[str] | None = None
) -> Path:
    """A tiny sequence written by hand (not by the writer under test)."""
    seq_dir = root / "sequences" / seq
    (seq_dir / "image_2").mkdir(parents=True)
    (seq_dir / "velodyne").mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(
            str(seq_dir / "image_2" / f"{i:06d}.png"), rng.integers(0, 256, (6, 8, 3), np.uint8)
        )
        rng.normal(size=(10, 4)).astype("<f4").tofile(seq_dir / "velodyne" / f"{i:06d}.bin")
    K = np.array([[FX, 0, 4], [0, FX, 3], [0, 0, 1]])
    (seq_dir / "calib.txt").write_text(
        f"P0: {pose_line(K, [0, 0, 0])}\n"
        f"P1: {pose_line(K, [-0.54 * FX, 0, 0])}\n"
        # camera 2 is 0.06 m left of camera 0: P2 = K [I | (0.06, 0, 0)]
        f"P2: {pose_line(K, [0.06 * FX, 0, 0])}\n"
        f"P3: {pose_line(K, [-0.48 * FX, 0, 0])}\n"
        f"Tr: {pose_line(TR_ROT, TR_T)}\n"
    )
    (seq_dir / "times.txt").write_text("".join(f"{0.1 * i:e}\n" for i in range(n)))
    if poses is not None:
        (root / "poses").mkdir(exist_ok=True)
        (root / "poses" / f"{seq}.txt").write_text("\n".join(poses) + "\n")
    return seq_dir


# Camera-0 poses: the start; 2 m straight ahead (camera +z); then 5 m ahead, 1 m to the
# right (camera +x) and turned 90 degrees to the right (about camera +y, which points down).
R_Y90 = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
CAMERA_POSES = [
    pose_line(np.eye(3), [0, 0, 0]),
    pose_line(np.eye(3), [0, 0, 2]),
    pose_line(R_Y90, [1, 0, 5]),
]
# Expected LiDAR poses, worked out by hand:
# - frame 1: the LiDAR moves as the camera does: 2 m along LiDAR x.
# - frame 2: yaw -90 degrees (turning right, z up). Camera 0 starts at (0.27, 0, -0.08) in
#   the first LiDAR frame and moves (5, -1, 0): it is at (5.27, -1, -0.08). The LiDAR sits
#   0.27 m behind and 0.08 m above the camera: (-0.27, 0, 0.08) in its own axes, which after
#   the turn is (0, 0.27, 0.08). LiDAR origin: (5.27, -0.73, 0).
EXPECTED_LIDAR_POSES = np.array(
    [
        np.eye(4),
        [[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        [[0, 1, 0, 5.27], [-1, 0, 0, -0.73], [0, 0, 1, 0], [0, 0, 0, 1]],
    ],
    dtype=np.float64,
)


def test_hand_written_sequence_gives_the_expected_lidar_poses(tmp_path: Path) -> None:
    make_sequence(tmp_path, poses=CAMERA_POSES)
    loaded = KittiOdometry(tmp_path, "00")
    np.testing.assert_allclose(loaded.poses, EXPECTED_LIDAR_POSES, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.stamps, [0.0, 0.1, 0.2])
    # Camera 2 (the images) is 0.06 m left of camera 0, which is at (0.27, 0, -0.08).
    expected = np.eye(4)
    expected[:3, :3] = TR_ROT.T
    expected[:3, 3] = [0.27, 0.06, -0.08]
    np.testing.assert_allclose(loaded.calibration.T_lidar_camera, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        loaded.calibration.camera_matrix, [[FX, 0, 4], [0, FX, 3], [0, 0, 1]]
    )
    assert loaded.calibration.image_size == (8, 6)
    image = loaded[0].image
    assert image.shape == (6, 8, 3)
    # BGR on disk, RGB in memory.
    on_disk = cv2.imread(str(tmp_path / "sequences/00/image_2/000000.png"))
    np.testing.assert_array_equal(image, on_disk[:, :, ::-1])


def test_semantic_kitti_style_poses_are_found(tmp_path: Path) -> None:
    seq_dir = make_sequence(tmp_path)
    (seq_dir / "poses.txt").write_text("\n".join(CAMERA_POSES) + "\n")
    loaded = KittiOdometry(tmp_path, 0)
    assert loaded.poses_path == seq_dir / "poses.txt"
    np.testing.assert_allclose(loaded.poses, EXPECTED_LIDAR_POSES, rtol=0, atol=1e-12)


def test_explicit_poses_file_wins(tmp_path: Path) -> None:
    make_sequence(tmp_path, poses=[pose_line(np.eye(3), [0, 0, 9])] * 3)
    other = tmp_path / "mine.txt"
    other.write_text("\n".join(CAMERA_POSES) + "\n")
    loaded = KittiOdometry(tmp_path, 0, poses_file=other)
    np.testing.assert_allclose(loaded.poses, EXPECTED_LIDAR_POSES, rtol=0, atol=1e-12)


def test_sequence_without_poses_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_sequence(tmp_path, seq="11")
    with caplog.at_level(logging.INFO, logger="liploc_ros.datasets.kitti"):
        loaded = KittiOdometry(tmp_path, 11)
    assert loaded.poses is None
    assert loaded.camera_poses is None
    assert loaded[0].pose is None
    assert "no poses" in caplog.text
    assert len(loaded) == 3


def test_missing_times_fall_back_to_10_hz(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seq_dir = make_sequence(tmp_path)
    (seq_dir / "times.txt").unlink()
    with caplog.at_level(logging.WARNING):
        loaded = KittiOdometry(tmp_path, 0)
    np.testing.assert_allclose(loaded.stamps, [0.0, 0.1, 0.2])
    assert "times.txt" in caplog.text


def test_non_finite_points_are_dropped(tmp_path: Path) -> None:
    seq_dir = make_sequence(tmp_path)
    points = np.arange(12, dtype="<f4").reshape(3, 4)
    points[1, 2] = np.nan
    points.tofile(seq_dir / "velodyne" / "000001.bin")
    np.testing.assert_array_equal(KittiOdometry(tmp_path, 0)[1].points, points[[0, 2]])


# -- bad input ---------------------------------------------------------------------------------


def _remove_dir(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


BAD_SEQUENCES = {
    "no velodyne folder": (lambda s: _remove_dir(s / "velodyne"), "velodyne"),
    "no image_2 folder": (lambda s: _remove_dir(s / "image_2"), "image_2"),
    "no calib.txt": (lambda s: (s / "calib.txt").unlink(), "calib.txt"),
    "no Tr line": (lambda s: rewrite_line(s / "calib.txt", 5, ""), "no 'Tr:' line"),
    "calib value not a number": (
        lambda s: rewrite_line(s / "calib.txt", 3, "P2: 1 0 4 x 0 1 3 0 0 0 1 0"),
        "calib.txt:3: 'x' is not a number",
    ),
    "calib line too short": (
        lambda s: rewrite_line(s / "calib.txt", 3, "P2: 1 0 4"),
        "calib.txt:3: 'P2' has 3 value(s), expected 12",
    ),
    "calib line without key": (
        lambda s: rewrite_line(s / "calib.txt", 2, "1 0 4"),
        "calib.txt:2: expected 'KEY: values'",
    ),
    "pose line too short": (
        lambda s: rewrite_line(s.parents[1] / "poses" / "00.txt", 2, "1 0 0 0 0 1 0 0 0 0 1"),
        "00.txt:2: expected 12 numbers, found 11",
    ),
    "pose value nan": (
        lambda s: rewrite_line(s.parents[1] / "poses" / "00.txt", 3, "1 0 0 0 0 1 0 0 0 0 1 nan"),
        "00.txt:3: non-finite value 'nan'",
    ),
    "too few poses": (
        lambda s: rewrite_line(s.parents[1] / "poses" / "00.txt", 3, ""),
        "00.txt: frame counts disagree: 2 poses but 3 frames",
    ),
    "too many times": (
        lambda s: (s / "times.txt").write_text("0\n0.1\n0.2\n0.3\n"),
        "times.txt: frame counts disagree: 4 times but 3 frames",
    ),
    "bad time": (
        lambda s: rewrite_line(s / "times.txt", 2, "0.1s"),
        "times.txt:2: '0.1s' is not a number",
    ),
    "a scan missing": (
        lambda s: (s / "velodyne" / "000002.bin").unlink(),
        "3 images in image_2/ but 2 scans in velodyne/",
    ),
    "scans and images of other frames": (
        lambda s: (s / "velodyne" / "000002.bin").rename(s / "velodyne" / "000007.bin"),
        "000002.png in image_2/ pairs with 000007.bin",
    ),
    "truncated scan": (
        lambda s: (s / "velodyne" / "000001.bin").write_bytes(b"\0" * 70),
        "000001.bin: size 70 bytes is not a multiple of 16",
    ),
    "first image not a PNG": (
        lambda s: (s / "image_2" / "000000.png").write_bytes(b"not an image"),
        "000000.png: not a PNG image",
    ),
    "no frames at all": (
        lambda s: [p.unlink() for p in [*s.glob("image_2/*"), *s.glob("velodyne/*")]],
        "no frames",
    ),
}


@pytest.mark.parametrize("case", BAD_SEQUENCES, ids=list(BAD_SEQUENCES))
def test_bad_sequences_raise_a_clear_error(tmp_path: Path, case: str) -> None:
    seq_dir = make_sequence(tmp_path, poses=CAMERA_POSES)
    damage, message = BAD_SEQUENCES[case]
    damage(seq_dir)
    with pytest.raises(DatasetError) as err:
        KittiOdometry(tmp_path, 0)
    assert message in str(err.value)


def test_corrupt_png_fails_when_read_and_names_the_file(tmp_path: Path) -> None:
    seq_dir = make_sequence(tmp_path)
    path = seq_dir / "image_2" / "000001.png"
    path.write_bytes(path.read_bytes()[:40])
    loaded = KittiOdometry(tmp_path, 0)  # only the first image's header is read up front
    assert loaded.frame(1, image=False).points.shape == (10, 4)
    with pytest.raises(DatasetError, match=r"000001\.png: corrupt or unreadable image"):
        loaded[1]


def test_missing_sequence_and_folder(tmp_path: Path) -> None:
    make_sequence(tmp_path)
    with pytest.raises(DatasetError, match=r"missing KITTI sequence folder .*05.*available: 00"):
        KittiOdometry(tmp_path, 5)
    with pytest.raises(DatasetError, match="name one of: 00"):
        KittiOdometry(tmp_path, None)
    with pytest.raises(DatasetError, match="does not exist"):
        KittiOdometry(tmp_path / "nowhere", 0)
    with pytest.raises(DatasetError, match="not a KITTI odometry folder"):
        KittiOdometry(tmp_path / "sequences", 3)
    with pytest.raises(DatasetError, match="missing KITTI poses file"):
        KittiOdometry(tmp_path, 0, poses_file=tmp_path / "nope.txt")


# -- writer -------------------------------------------------------------------------------------


def test_writer_refuses_to_clobber_then_overwrites_cleanly(tmp_path: Path) -> None:
    calibration = kitti_like_calibration()
    write_kitti_odometry(kitti_source(calibration=calibration), tmp_path, progress=False)
    with pytest.raises(DatasetError, match="already holds data"):
        write_kitti_odometry(kitti_source(calibration=calibration), tmp_path, progress=False)
    # A shorter source without poses replaces it: no stale frames, no stale poses file.
    shorter = kitti_source(3, seed=5, calibration=calibration, posed=False)
    write_kitti_odometry(shorter, tmp_path, progress=False, overwrite=True)
    loaded = KittiOdometry(tmp_path, 0)
    assert loaded.poses is None
    assert_same_frames(shorter, loaded)
    assert not (tmp_path / "poses" / "00.txt").exists()


def test_writer_without_calibration_uses_the_default_rig(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = kitti_source(calibration=None)
    with caplog.at_level(logging.WARNING):
        write_kitti_odometry(source, tmp_path, progress=False)
    assert "no calibration" in caplog.text
    loaded = KittiOdometry(tmp_path, 0)
    expected = default_calibration((120, 40))
    np.testing.assert_array_equal(loaded.calibration.camera_matrix, expected.camera_matrix)
    np.testing.assert_allclose(
        loaded.calibration.T_lidar_camera, DEFAULT_T_LIDAR_CAMERA, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(loaded.poses, source.poses, rtol=0, atol=1e-9)


def test_writer_refuses_partial_poses_before_writing(tmp_path: Path) -> None:
    source = kitti_source(calibration=kitti_like_calibration(), unposed=(2,))
    with pytest.raises(DatasetError, match=r"1 of 5 frames .* have no pose"):
        write_kitti_odometry(source, tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.png"))


def test_writer_checks_the_calibration_against_the_images(tmp_path: Path) -> None:
    source = kitti_source(calibration=kitti_like_calibration(width=1241, height=376))
    with pytest.raises(DatasetError, match="calibration is for 1241x376 images"):
        write_kitti_odometry(source, tmp_path, progress=False)


def test_writer_rejects_bad_frames(tmp_path: Path) -> None:
    source = kitti_source(calibration=kitti_like_calibration())
    source.points[1] = source.points[1][:, :3]
    with pytest.raises(DatasetError, match="fake frame 1: expected N x 4 points"):
        write_kitti_odometry(source, tmp_path, progress=False)
    source = kitti_source(calibration=kitti_like_calibration())
    source.images[2] = source.images[2][:, :, 0]
    with pytest.raises(DatasetError, match="fake frame 2: expected an H x W x 3 uint8"):
        write_kitti_odometry(source, tmp_path, progress=False, overwrite=True)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "calib.txt"
    write_bytes_atomic(path, b"good")

    def fail_half_way() -> None:
        with atomic_open(path) as handle:
            handle.write(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fail_half_way()
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["calib.txt"]


def test_synthetic_drive_round_trip(tmp_path: Path) -> None:
    # Imported here: the synthetic world is another module, and a break there should fail
    # only this test.
    from liploc_ros.datasets.synthetic import make_drive

    drive = make_drive(seed=1, traversal=0, frames=3)
    write_kitti_odometry(drive, tmp_path, 0, progress=False)
    loaded = KittiOdometry(tmp_path, 0)
    assert len(loaded) == 3
    for i in range(3):
        expected, frame = drive[i], loaded[i]
        np.testing.assert_array_equal(frame.image, expected.image)
        np.testing.assert_array_equal(frame.points, expected.points)
        np.testing.assert_allclose(frame.pose, expected.pose, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(loaded.stamps, drive.stamps)
    np.testing.assert_array_equal(
        loaded.calibration.camera_matrix, drive.calibration.camera_matrix
    )
    assert loaded.calibration.image_size == drive.calibration.image_size
