"""Pose interpolation (PoseTrack) and the offline tf tree used by the bag reader."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from source_helpers import pose

from liploc_ros.datasets.interpolation import PoseTrack, make_transform, transform_to_quat
from liploc_ros.datasets.tf_tree import TfTree
from liploc_ros.errors import DatasetError


def _yaw_deg(T: np.ndarray) -> float:
    return float(Rotation.from_matrix(T[:3, :3]).as_euler("zyx", degrees=True)[0])


def test_halfway_between_yaw_0_and_90_is_yaw_45_and_mean_translation():
    track = PoseTrack(np.array([10.0, 12.0]), np.stack([pose(0, (0, 0, 0)), pose(90, (4, 2, 1))]))
    T = track.at(11.0)
    assert T is not None
    assert _yaw_deg(T) == pytest.approx(45.0, abs=1e-9)
    np.testing.assert_allclose(T[:3, 3], [2, 1, 0.5], atol=1e-12)
    # a quarter of the way: yaw 22.5, translation a quarter
    T = track.at(10.5)
    assert _yaw_deg(T) == pytest.approx(22.5, abs=1e-9)
    np.testing.assert_allclose(T[:3, 3], [1, 0.5, 0.25], atol=1e-12)
    np.testing.assert_allclose(T[3], [0, 0, 0, 1])


def test_slerp_takes_the_short_way_across_180_degrees():
    track = PoseTrack(
        np.array([0.0, 1.0]), np.stack([pose(170, (0, 0, 0)), pose(-170, (0, 0, 0))])
    )
    assert abs(_yaw_deg(track.at(0.5))) == pytest.approx(180.0, abs=1e-9)


def test_no_extrapolation_and_gaps():
    stamps = np.array([0.0, 0.1, 0.2, 5.0, 5.1])
    poses = np.stack([pose(0, (float(t), 0, 0)) for t in stamps])
    track = PoseTrack(stamps, poses, max_gap=1.0)
    out, valid = track.sample(np.array([-0.01, 0.0, 0.15, 2.0, 5.0, 5.1, 5.2]))
    np.testing.assert_array_equal(valid, [False, True, True, False, True, True, False])
    assert np.isnan(out[~valid]).all()
    np.testing.assert_allclose(out[2][:3, 3], [0.15, 0, 0], atol=1e-12)
    # without a gap limit, the long gap is interpolated
    assert PoseTrack(stamps, poses).at(2.0) is not None


def test_unsorted_and_repeated_stamps():
    stamps = np.array([2.0, 0.0, 1.0, 1.0])
    poses = np.stack(
        [pose(0, (2, 0, 0)), pose(0, (0, 0, 0)), pose(0, (9, 9, 9)), pose(0, (1, 0, 0))]
    )
    track = PoseTrack(stamps, poses)
    assert len(track) == 3
    np.testing.assert_allclose(track.at(1.0)[:3, 3], [1, 0, 0])  # the last of the repeats
    np.testing.assert_allclose(track.at(1.5)[:3, 3], [1.5, 0, 0])


def test_single_sample_track_is_valid_only_at_its_stamp():
    track = PoseTrack(np.array([3.0]), pose(30, (1, 2, 3))[None])
    np.testing.assert_allclose(track.at(3.0), pose(30, (1, 2, 3)), atol=1e-12)
    assert track.at(3.01) is None


def test_quaternion_helpers_roundtrip_and_reject_zero():
    T = pose(33, (1, -2, 0.5))
    t, q = transform_to_quat(T)
    np.testing.assert_allclose(make_transform(t, q), T, atol=1e-12)
    np.testing.assert_allclose(make_transform(t, 3 * q), T, atol=1e-12)  # normalised
    with pytest.raises(DatasetError, match="invalid quaternion"):
        make_transform(t, (0, 0, 0, 0))


def _add(tree: TfTree, parent: str, child: str, stamp: float, T: np.ndarray, static: bool):
    t, q = transform_to_quat(T)
    tree.add(parent, child, stamp, t, q, static=static)


def test_tf_chain_composes_static_and_dynamic_edges():
    tree = TfTree()
    T_base_imu = pose(0, (0.1, 0.0, 0.9))
    T_imu_velo = pose(90, (0.8, 0.3, 0.8))
    _add(tree, "base_link", "imu_link", 0.0, T_base_imu, True)
    _add(tree, "/imu_link", "velo_link", 0.0, T_imu_velo, True)  # ROS 1 leading slash
    _add(tree, "base_link", "camera", 0.0, pose(-90, (1.0, 0.0, 1.5)), True)
    _add(tree, "world", "base_link", 1.0, pose(0, (0, 0, 0)), False)
    _add(tree, "world", "base_link", 3.0, pose(90, (10, 0, 0)), False)
    assert tree.root("velo_link") == "world"
    T, ok = tree.lookup("world", "velo_link", np.array([2.0, 0.5]))
    np.testing.assert_array_equal(ok, [True, False])
    expected = pose(45, (5, 0, 0)) @ T_base_imu @ T_imu_velo
    np.testing.assert_allclose(T[0], expected, atol=1e-12)
    # across branches: camera <- base_link -> imu -> velo
    T, ok = tree.lookup("camera", "velo_link", 2.0)
    np.testing.assert_allclose(
        T[0], np.linalg.inv(pose(-90, (1.0, 0.0, 1.5))) @ T_base_imu @ T_imu_velo, atol=1e-12
    )
    assert tree.is_static_path("camera", "velo_link")
    assert not tree.is_static_path("world", "velo_link")
    assert tree.edge_span("base_link") == (1.0, 3.0)


def test_tf_errors_name_the_tree():
    tree = TfTree()
    _add(tree, "a", "b", 0.0, np.eye(4), True)
    _add(tree, "c", "d", 0.0, np.eye(4), True)
    with pytest.raises(DatasetError, match=r"no path between 'a' and 'd'.*a -> b \(static\)"):
        tree.lookup("a", "d", 0.0)
    with pytest.raises(DatasetError, match="invalid transform"):
        tree.add("a", "e", 0.0, (0, 0, 0), (0, 0, 0, 0), static=False)
