"""Synthetic drives as IndexedSources, and how traversals of one town differ."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from liploc_ros.datasets.base import IndexedSource
from liploc_ros.datasets.synthetic import (
    Material,
    RigConfig,
    SyntheticDrive,
    TownConfig,
    TraversalConfig,
    make_drive,
    make_town,
)

RIG = RigConfig(image_scale=0.2, lidar_azimuth_steps=512)
FRAMES = 200


@pytest.fixture(scope="module")
def drives():
    # 0: mapping drive; 1: same lane, another day; 2: other lane; 3: opposite direction
    town = make_town(TownConfig(seed=5))
    return [SyntheticDrive(town, t, FRAMES, RIG) for t in range(4)]


def _nearest(track: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(points[:, None, :] - track[None, :, :], axis=2)
    return d.min(axis=1), d.argmin(axis=1)


def test_drive_is_an_indexed_source(drives):
    drive = drives[0]
    assert isinstance(drive, IndexedSource)
    assert drive.name == "synthetic/seed5/t0"
    assert drives[3].name == "synthetic/seed5/t3"
    assert len(drive) == FRAMES
    np.testing.assert_allclose(drive.stamps, np.arange(FRAMES) / 10.0)
    poses = drive.poses
    assert poses.shape == (FRAMES, 4, 4)
    assert poses.dtype == np.float64
    np.testing.assert_allclose(poses[:, 2, 3], 1.73)  # LiDAR above the ground plane z = 0
    R = poses[:, :3, :3]
    np.testing.assert_allclose(
        R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12
    )
    frame = drive.frame(7, image=False, points=False)
    assert frame.image is None
    assert frame.points is None
    assert frame.index == 7
    np.testing.assert_array_equal(frame.pose, poses[7])
    assert frame.stamp == pytest.approx(0.7)
    assert drive[-1].index == FRAMES - 1
    with pytest.raises(IndexError):
        drive.frame(FRAMES)
    with pytest.raises(IndexError):
        drive[FRAMES]


def test_calibration_is_kitti_like(drives):
    cal = drives[0].calibration
    w, h = cal.image_size
    assert (w, h) == RIG.image_size == (248, 75)
    K = cal.camera_matrix
    assert K[0, 0] == pytest.approx(721.5377 * 0.2)
    assert K[0, 0] == K[1, 1]
    assert 0.45 * w < K[0, 2] < 0.5 * w
    assert 0.4 * h < K[1, 2] < 0.5 * h
    T = cal.T_lidar_camera
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [1, 0, 0])  # optical axis = LiDAR x
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [0, 0, -1])  # image down = LiDAR -z
    assert T[0, 3] == pytest.approx(0.27)
    assert T[2, 3] == pytest.approx(-0.08)
    assert drives[0].camera_pose(3)[2, 3] == pytest.approx(1.65)


def test_query_traversals_follow_the_mapping_route(drives):
    mapping, same_lane, other_lane, reverse = drives
    track = mapping.poses[:, :2, 3]
    for query in drives[1:]:
        dist, nearest = _nearest(track, query.poses[:, :2, 3])
        assert dist.max() < 5.0  # never far from the mapping route
        dyaw = np.angle(np.exp(1j * (query.trajectory.yaw - mapping.trajectory.yaw[nearest])))
        if query is reverse:
            assert np.abs(dyaw).min() > np.radians(150)
        else:
            assert np.abs(dyaw).max() < np.radians(10)
        # frames fall elsewhere along the route: query frames do not replay mapping frames
        assert np.mean(dist > 0.05) > 0.8
    assert _nearest(track, same_lane.poses[:, :2, 3])[0].mean() < 1.0
    assert _nearest(track, other_lane.poses[:, :2, 3])[0].mean() > 2.5
    assert _nearest(track, reverse.poses[:, :2, 3])[0].mean() > 2.5
    # speeds differ: the query's frame spacing varies, the map's does not
    map_steps = np.diff(mapping.trajectory.s)
    query_steps = np.abs(np.diff(same_lane.trajectory.s))
    assert map_steps.std() < 1e-9
    assert query_steps.std() > 0.05


def test_traversals_differ_in_parked_cars_and_light(drives):
    mapping, query = drives[:2]

    def cars(drive):
        scene = drive.scene
        body = (scene.material == Material.CAR_BODY) & (scene.z0 == 0)
        return np.stack([scene.cx[body], scene.cy[body]], axis=1)

    a, b = cars(mapping), cars(query)
    moved = _nearest(a, b)[0] > 0.5
    gone = _nearest(b, a)[0] > 0.5
    assert 0.05 < moved.mean() < 0.6
    assert 0.05 < gone.mean() < 0.6
    # the static town is shared
    n_static = len(mapping.town.static)
    np.testing.assert_array_equal(mapping.scene.cx[:n_static], query.scene.cx[:n_static])
    # the same place looks different: light and colour cast
    i_map = 100
    _dist, j = _nearest(query.poses[:, :2, 3], mapping.poses[i_map : i_map + 1, :2, 3])
    img_map = mapping.frame(i_map, points=False).image.astype(float)
    img_query = query.frame(int(j[0]), points=False).image.astype(float)
    assert mapping.traversal != query.traversal
    mean_map, mean_query = img_map.mean(axis=(0, 1)), img_query.mean(axis=(0, 1))
    assert np.abs(mean_map - mean_query).max() > 3.0


def test_traversal_config_can_be_given_explicitly():
    trav = TraversalConfig(index=7, lane="left", reverse=True, speed=8.0, brightness=0.8)
    drive = make_drive(5, trav, frames=50, rig=RIG)
    assert drive.name == "synthetic/seed5/t7"
    assert drive.traversal is trav
    assert drive.trajectory.s[0] == pytest.approx(49 * 0.8)
    assert drive.trajectory.s[-1] == 0.0
    img = drive.frame(0, points=False).image
    assert img.shape == (75, 248, 3)


def test_drive_survives_pickling_for_dataloader_workers(drives):
    clone = pickle.loads(pickle.dumps(drives[1]))
    np.testing.assert_array_equal(clone.frame(3).points, drives[1].frame(3).points)
