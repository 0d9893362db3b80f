"""Simulated odometry: the error model does what it says; KITTI layouts carry it, labelled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from source_helpers import FakeSource

from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.kitti360 import Kitti360, write_kitti360
from liploc_ros.datasets.odometry import (
    DEFAULT_ODOMETRY_ERRORS,
    EXACT_ODOMETRY,
    OdometryErrorModel,
    simulate_odometry,
)
from liploc_ros.datasets.odometry_sources import WithOdometry, simulated_from_poses, stable_seed
from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.geometry import planar, relative_steps, se2_matrices


def straight(n: int = 201, step: float = 1.0, height: float = 1.73) -> np.ndarray:
    """A drive along x, one pose every ``step`` metres."""
    xyyaw = np.zeros((n, 3))
    xyyaw[:, 0] = step * np.arange(n)
    return se2_matrices(xyyaw, height)


def curvy(n: int = 150) -> np.ndarray:
    """Turns both ways, a stop (repeated poses) in the middle."""
    s = np.concatenate([np.linspace(0, 60, n // 2), np.full(10, 60.0), np.linspace(60, 130, n)])
    yaw = 0.6 * np.sin(s / 15.0)
    xy = np.cumsum(np.stack([np.cos(yaw), np.sin(yaw)], 1) * np.gradient(s)[:, None], axis=0)
    return se2_matrices(np.column_stack([xy, yaw]), 1.73)


def travelled_forward(poses: np.ndarray) -> float:
    return float(relative_steps(planar(poses))[:, 0].sum())


def test_scale_error_measured_on_a_straight_drive_is_the_configured_one():
    truth = straight()
    length = travelled_forward(truth)
    noisy = OdometryErrorModel(0.05, 0.0, 0.02, 0.0)
    signs = set()
    for traversal in range(8):
        odom = simulate_odometry(truth, (7, traversal), noisy)
        error = travelled_forward(odom) / length - 1.0
        # per-step noise 2 % of 1 m over 200 steps: sigma of the sum 0.02 * sqrt(200) / 200
        assert abs(abs(error) - 0.05) < 4 * 0.02 / math.sqrt(200), error
        signs.add(np.sign(error))
        # no heading error configured: the drive stays straight
        np.testing.assert_allclose(planar(odom)[:, 2], 0.0, atol=1e-12)
    assert signs == {-1.0, 1.0}  # seeded sign: both occur across traversals
    exact = simulate_odometry(truth, (7, 0), OdometryErrorModel(0.05, 0.0, 0.0, 0.0))
    assert abs(travelled_forward(exact) / length - 1.0) == pytest.approx(0.05, abs=1e-12)


def test_yaw_drift_bends_a_straight_drive_by_its_rate():
    truth = straight(n=101)  # 100 m
    model = OdometryErrorModel(0.0, 0.1, 0.0, 0.0)
    signs = set()
    for traversal in range(8):
        odom = planar(simulate_odometry(truth, (3, traversal), model))
        rate = odom[-1, 2] / 100.0  # rad per metre
        assert 0.5 * math.radians(0.1) - 1e-12 <= abs(rate) <= math.radians(0.1) + 1e-12
        # a heading bias to the left (positive yaw) moves the vehicle left (+y), and back
        assert np.sign(odom[-1, 1]) == np.sign(rate)
        np.testing.assert_allclose(np.diff(odom[:, 2]), rate, atol=1e-12)  # steady drift
        signs.add(np.sign(rate))
    assert signs == {-1.0, 1.0}


def test_deterministic_per_seed_and_different_across_traversals():
    truth = curvy()
    a = simulate_odometry(truth, (5, 1))
    np.testing.assert_array_equal(a, simulate_odometry(truth, (5, 1)))
    assert not np.allclose(a, simulate_odometry(truth, (5, 2)), atol=1e-3)
    assert not np.allclose(a, simulate_odometry(truth, (6, 1)), atol=1e-3)
    assert stable_seed("kitti", "08") == stable_seed("kitti", "08") != stable_seed("kitti", "09")


def test_exact_model_reproduces_the_truths_motion_and_drift_grows():
    truth = curvy()
    exact = simulate_odometry(truth, (1, 0), EXACT_ODOMETRY)
    np.testing.assert_allclose(
        relative_steps(planar(exact)), relative_steps(planar(truth)), atol=1e-9
    )
    np.testing.assert_allclose(exact, truth, atol=1e-9)  # planar truth from its first pose
    # the default model drifts: the end point is off, but by less than a tenth of the route
    odom = simulate_odometry(truth, (1, 0), DEFAULT_ODOMETRY_ERRORS)
    end_error = np.linalg.norm(odom[-1, :2, 3] - truth[-1, :2, 3])
    assert 0.3 < end_error < 13.0, end_error
    # standing still: the wheels do not turn, so the stop has no motion
    stop = relative_steps(planar(odom))[75:84]
    np.testing.assert_array_equal(stop, 0.0)


def test_error_model_checks_its_figures():
    with pytest.raises(ConfigError, match="scale_error"):
        OdometryErrorModel(scale_error=0.7)
    with pytest.raises(ConfigError, match="yaw_noise_deg"):
        OdometryErrorModel(yaw_noise_deg=-1.0)


def test_unposed_frames_get_no_odometry():
    truth = curvy(60)
    truth[[0, 1, 20]] = np.nan
    odom = simulated_from_poses(truth, (1,), DEFAULT_ODOMETRY_ERRORS)
    bad = ~np.isfinite(odom).all(axis=(1, 2))
    assert bad.tolist() == [i in (0, 1, 20) for i in range(len(truth))]
    assert simulated_from_poses(None, (1,), DEFAULT_ODOMETRY_ERRORS) is None
    assert simulated_from_poses(np.full((3, 4, 4), np.nan), (1,), DEFAULT_ODOMETRY_ERRORS) is None
    assert simulated_from_poses(truth, (1,), None) is None


def test_kitti_sequences_carry_a_simulated_odometry(tmp_path):
    source = FakeSource(6, start=0.0)
    write_kitti_odometry(source, tmp_path, "00", progress=False)
    write_kitti_odometry(source, tmp_path, "01", progress=False)
    seq0, seq1 = KittiOdometry(tmp_path, "00"), KittiOdometry(tmp_path, "01")
    odom = seq0.odometry
    assert odom.shape == (6, 4, 4)
    assert np.isfinite(odom).all()
    np.testing.assert_array_equal(odom, KittiOdometry(tmp_path, "00").odometry)  # stable
    assert not np.allclose(odom, seq1.odometry)  # the sequence name seeds it
    expected = simulate_odometry(seq0.poses, stable_seed("kitti", "00"), DEFAULT_ODOMETRY_ERRORS)
    np.testing.assert_allclose(odom, expected)
    frame = seq0.frame(3, image=False, points=False)
    assert frame.meta["odometry"] == "simulated"
    np.testing.assert_array_equal(frame.odometry, odom[3])
    # the same motion as the poses up to the model's errors (a few % of each 1.5 m step)
    steps = relative_steps(planar(odom))
    truth_steps = relative_steps(planar(seq0.poses))
    np.testing.assert_allclose(steps[:, 0], truth_steps[:, 0], rtol=0.15, atol=0.05)
    exact = KittiOdometry(tmp_path, "00", odometry_errors=EXACT_ODOMETRY).odometry
    np.testing.assert_allclose(relative_steps(planar(exact)), truth_steps, atol=1e-9)
    assert KittiOdometry(tmp_path, "00", odometry_errors=None).frame(0).odometry is None


def test_kitti_without_poses_has_no_odometry(tmp_path):
    write_kitti_odometry(FakeSource(3, start=0.0), tmp_path, "11", progress=False)
    (tmp_path / "poses" / "11.txt").unlink()
    seq = KittiOdometry(tmp_path, "11")
    assert seq.poses is None
    assert seq.odometry is None
    frame = seq.frame(0, image=False, points=False)
    assert frame.odometry is None
    assert "odometry" not in frame.meta


def test_kitti360_odometry_skips_unposed_frames(tmp_path):
    write_kitti360(FakeSource(7, unposed=(0, 4)), tmp_path, 2, progress=False)
    drive = Kitti360(tmp_path, 2)
    odom = drive.odometry
    posed = np.isfinite(drive.poses).all(axis=(1, 2))
    assert posed.tolist() == [False, True, True, True, False, True, True]
    np.testing.assert_array_equal(np.isfinite(odom).all(axis=(1, 2)), posed)
    for i in range(7):
        frame = drive.frame(i, image=False, points=False)
        assert (frame.odometry is not None) == posed[i] == ("odometry" in frame.meta)
    assert drive.frame(1, image=False, points=False).meta["odometry"] == "simulated"
    exact = Kitti360(tmp_path, 2, odometry_errors=EXACT_ODOMETRY).odometry
    np.testing.assert_allclose(exact[posed, :2, 3], drive.poses[posed, :2, 3], atol=1e-9)
    # another drive of the same frames drifts differently
    write_kitti360(FakeSource(7, unposed=(0, 4)), tmp_path, 3, progress=False)
    assert not np.allclose(Kitti360(tmp_path, 3).odometry[posed], odom[posed])
    write_kitti360(FakeSource(3, unposed=(0, 1, 2)), tmp_path, 5, progress=False)
    assert Kitti360(tmp_path, 5).odometry is None


def test_with_odometry_replaces_or_removes_a_sources_odometry(tmp_path):
    write_kitti_odometry(FakeSource(4, start=0.0), tmp_path, "00", progress=False)
    seq = KittiOdometry(tmp_path, "00")
    other = simulate_odometry(seq.poses, (9,), EXACT_ODOMETRY)
    wrapped = WithOdometry(seq, other, model="exact")
    frames = list(wrapped.iter_frames(image=False, points=False))
    assert len(frames) == len(wrapped) == 4
    for frame in frames:
        np.testing.assert_array_equal(frame.odometry, other[frame.index])
        assert frame.meta["odometry_model"] == "exact"
    np.testing.assert_array_equal(wrapped.odometry, other)
    bare = WithOdometry(seq, None).frame(1, image=False, points=False)
    assert bare.odometry is None
    assert "odometry" not in bare.meta
    np.testing.assert_array_equal(bare.pose, seq.poses[1])
    with pytest.raises(DatasetError, match="odometry of shape"):
        WithOdometry(seq, other[:2])
