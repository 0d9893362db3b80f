"""An estimate of the LiDAR's pose re-expressed for base_link (the pose a vehicle stack
wants): the pose through the mount, the covariance recomputed from the very entries and
weights the estimate used."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liploc_ros.errors import MapError
from liploc_ros.localization.base_pose import base_pose
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.estimate import estimate_pose, pose_deltas
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info
from liploc_ros.ros.pose_sources import extrinsic_matrix


def _pose(x, y, z=0.0, roll=0.0, pitch=0.0, yaw=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [roll, pitch, yaw], degrees=True).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


@pytest.fixture
def tilted_map() -> MapDatabase:
    """Entries whose poses differ in position, heading and tilt."""
    poses = np.stack(
        [
            _pose(0, 0, 1.73, yaw=10),
            _pose(2, 1, 1.73, roll=4, pitch=-3, yaw=20),
            _pose(-3, 2, 1.8, pitch=6, yaw=-170),
            _pose(8, -4, 1.7, roll=-5, yaw=90),
        ]
    )
    emb = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    return MapDatabase.from_poses(emb, poses, np.arange(4.0), synthetic_info(8))


#: log-likelihood ratio per unit score of the test's evidence model (linear, so that the
#: weights are a softmax of the scores that a test can compute by hand)
SLOPE = 40.0


def _evidence() -> EvidenceModel:
    z = np.array([-1.0, 2.0])
    # entries a search did not retrieve count nothing here
    return EvidenceModel(z, SLOPE * z, 5.0, 1.0, np.zeros(2))


def _estimate_at(idx, scores, database, config, **kw):
    """The estimate with the scores standing for their own z-scores."""
    return estimate_pose(
        idx, scores, database.poses_at(idx), 5.0, config,
        z=scores, evidence=_evidence(), entries=len(database), **kw,
    )  # fmt: skip


def _estimate(database, config):
    return _estimate_at(np.array([1, 0, 2, 3]), np.array([0.9, 0.85, 0.8, 0.7]), database, config)


def test_with_an_identity_mount_the_base_pose_is_the_estimate():
    config = LocalizerConfig(max_spread_m=100.0, target_precision=0.5)
    database = MapDatabase.from_poses(
        np.eye(4, 8, dtype=np.float32),
        np.stack([_pose(0, 0), _pose(3, 4, yaw=30), _pose(-2, 1, roll=3), _pose(9, 9)]),
        np.arange(4.0),
        synthetic_info(8),
    )
    est = _estimate(database, config)
    fix = base_pose(est, database, np.eye(4), config)
    np.testing.assert_allclose(fix.matrix, est.pose)
    np.testing.assert_allclose(fix.covariance, est.covariance, atol=1e-12)


def test_the_base_pose_moves_each_match_by_the_mount(tilted_map):
    config = LocalizerConfig(max_spread_m=100.0, target_precision=0.5)
    est = _estimate(tilted_map, config)
    assert est.ok
    T_base_lidar = extrinsic_matrix([0.2, 0.0, 1.73, 0.0, 0.0, 0.0])
    fix = base_pose(est, tilted_map, T_base_lidar, config)
    np.testing.assert_allclose(fix.matrix, est.pose @ np.linalg.inv(T_base_lidar), atol=1e-12)
    # by hand: every match moved to base_link, deltas about the best, weighted, plus floors
    moved = tilted_map.poses_at(est.indices) @ np.linalg.inv(T_base_lidar)
    d = pose_deltas(moved, moved[0])
    expected = (d * est.weights[:, None]).T @ d + np.diag(np.square(config.std_floors))
    np.testing.assert_allclose(fix.covariance, expected, atol=1e-10)
    # the tilt of the matches makes base_link's position less certain than the LiDAR's...
    assert not np.allclose(fix.covariance[:3, :3], est.covariance[:3, :3])
    # ... while the angles are the same rotation differences
    np.testing.assert_allclose(fix.covariance[3:, 3:], est.covariance[3:, 3:], atol=1e-10)
    assert np.all(np.linalg.eigvalsh(fix.covariance) > 0)
    assert np.allclose(fix.covariance, fix.covariance.T)


def test_a_rotated_mount_turns_the_base_heading():
    config = LocalizerConfig(target_precision=0.5)
    database = MapDatabase.from_poses(
        np.eye(2, 8, dtype=np.float32),
        np.stack([_pose(5, 5, 1.73, yaw=40), _pose(6, 5, 1.73, yaw=40)]),
        np.arange(2.0),
        synthetic_info(8),
    )
    est = _estimate_at(np.array([0, 1]), np.array([1.0, 0.5]), database, config)
    fix = base_pose(est, database, extrinsic_matrix([0, 0, 1.73, 0, 0, math.pi / 2]), config)
    yaw = Rotation.from_matrix(fix.matrix[:3, :3]).as_euler("xyz", degrees=True)[2]
    assert yaw == pytest.approx(-50.0)
    np.testing.assert_allclose(fix.matrix[:3, 3], [5, 5, 0], atol=1e-9)


def test_an_estimate_without_fix_has_no_base_pose(tilted_map):
    config = LocalizerConfig(max_spread_m=0.5)
    est = _estimate(tilted_map, config)
    assert not est.ok
    with pytest.raises(ValueError, match="no fix"):
        base_pose(est, tilted_map, np.eye(4), config)


def test_on_a_two_crop_map_the_covariance_comes_from_the_entries_the_estimate_used():
    """Every crop of the top_k best keyframes enters the estimate: here keyframes 0 and 1
    (entries 0, 2 and their rear crops 1, 3), while entry 4 (keyframe 2), retrieved third,
    does not. The entries used are not the first ones retrieved."""
    config = LocalizerConfig(top_k=2, max_spread_m=100.0, target_precision=0.5)
    forward = [
        _pose(0, 0, 1.73, yaw=0),
        _pose(3, 1, 1.75, roll=3, yaw=5),
        _pose(40, -9, 1.9, pitch=-4, yaw=60),
        _pose(80, 20, 1.7, yaw=-30),
    ]
    rear = [p @ _pose(0, 0, yaw=180) for p in forward]
    poses = np.stack([p for pair in zip(forward, rear, strict=True) for p in pair])
    emb = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    database = MapDatabase.from_poses(
        emb, poses, np.arange(8.0), synthetic_info(8),
        heading_deg=np.tile([0.0, 180.0], 4), keyframes=np.repeat(np.arange(4), 2),
    )  # fmt: skip
    retrieved = np.array([0, 2, 4, 1, 3])
    scores = np.array([0.90, 0.88, 0.87, 0.80, 0.78])
    est = _estimate_at(
        retrieved, scores, database, config, keyframes=database.keyframes[retrieved]
    )
    assert est.ok
    np.testing.assert_array_equal(est.used, [0, 2, 1, 3])
    T_base_lidar = extrinsic_matrix([0.3, 0.0, 1.73, 0.0, 0.0, 0.0])
    fix = base_pose(est, database, T_base_lidar, config)
    # by hand: the used entries' likelihood ratios normalised, their poses moved to
    # base_link, second moment about the best, plus the floors
    used_scores = np.array([0.90, 0.88, 0.80, 0.78])
    w = np.exp(SLOPE * (used_scores - 0.90))
    w /= w.sum()
    moved = database.poses[[0, 2, 1, 3]] @ np.linalg.inv(T_base_lidar)
    d = pose_deltas(moved, moved[0])
    expected = (d * w[:, None]).T @ d + np.diag(np.square(config.std_floors))
    np.testing.assert_allclose(fix.covariance, expected, atol=1e-10)
    # the first four retrieved entries (entry 4, 40 m away, instead of entry 3) would
    # give another covariance: the check above tells them apart
    prefix = database.poses[[0, 2, 4, 1]] @ np.linalg.inv(T_base_lidar)
    d_prefix = pose_deltas(prefix, prefix[0])
    from_prefix = (d_prefix * w[:, None]).T @ d_prefix + np.diag(np.square(config.std_floors))
    assert not np.allclose(fix.covariance, from_prefix, atol=1e-3)


def test_an_estimate_whose_entries_do_not_fit_the_map_is_refused(tilted_map):
    config = LocalizerConfig(max_spread_m=100.0, target_precision=0.5)
    est = _estimate(tilted_map, config)
    small = MapDatabase.from_poses(
        np.eye(2, 8, dtype=np.float32), tilted_map.poses[:2], np.arange(2.0), synthetic_info(8)
    )
    with pytest.raises(MapError, match="entries"):
        base_pose(est, small, np.eye(4), config)
