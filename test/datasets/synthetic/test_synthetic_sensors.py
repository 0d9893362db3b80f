"""Camera and LiDAR of the synthetic rig: conventions, determinism and agreement."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.datasets.synthetic import Material, RigConfig, make_drive

#: small rig for speed: 310 x 94 images, 720 azimuth steps
RIG = RigConfig(image_scale=0.25, lidar_azimuth_steps=720)
GROUND = [Material.ASPHALT, Material.LANE_PAINT, Material.SIDEWALK, Material.KERB]
GROUND += [Material.GRASS, Material.PAVING]


@pytest.fixture(scope="module")
def drive():
    return make_drive(2, 0, frames=120, rig=RIG)


def _to_camera(drive, points: np.ndarray) -> np.ndarray:
    T = np.linalg.inv(drive.calibration.T_lidar_camera)
    return points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]


def _project(drive, pc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uvw = pc @ drive.calibration.camera_matrix.T
    return uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]


def test_frame_conventions(drive):
    frame = drive[40]
    w, h = drive.calibration.image_size
    assert frame.image.shape == (h, w, 3)
    assert frame.image.dtype == np.uint8
    assert frame.image.flags.c_contiguous
    pts = frame.points
    assert pts.ndim == 2
    assert pts.shape[1] == 4
    assert pts.dtype == np.float32
    assert np.isfinite(pts).all()
    assert 0.5 * RIG.lidar_beams * RIG.lidar_azimuth_steps < len(pts)
    assert len(pts) < RIG.lidar_beams * RIG.lidar_azimuth_steps  # no sky returns, dropouts
    rng = np.linalg.norm(pts[:, :3], axis=1)
    assert rng.max() <= RIG.lidar_max_range
    assert pts[:, 3].min() >= 0.0
    assert pts[:, 3].max() <= 1.0
    elev = np.degrees(np.arcsin(pts[:, 2] / rng))
    assert elev.max() < 2.1
    assert elev.min() > -25.0
    # the sky is at the top of the image and is blue-ish; the road at the bottom is grey
    top, bottom = frame.image[:3].reshape(-1, 3).astype(int), frame.image[-3:].reshape(-1, 3)
    sky = drive.render_camera(40).material[:3] == Material.NONE
    assert sky.any()
    assert (top[sky.ravel(), 2] > top[sky.ravel(), 0]).all()
    assert np.abs(bottom.astype(int) - bottom.mean(axis=1, keepdims=True)).mean() < 12


def test_ground_returns_lie_on_the_map_ground_plane(drive):
    scan = drive.render_lidar(70)
    pose = drive.poses[70]
    pts = scan.points[:, :3].astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
    ground = np.isin(scan.material, GROUND)
    assert ground.mean() > 0.3
    assert np.abs(pts[ground, 2]).max() < 0.15  # 2 cm noise, grazing angles stretch it
    assert np.median(np.abs(pts[ground, 2])) < 0.03
    assert pts[~ground, 2].mean() > 1.0  # objects stand above the ground
    # in the LiDAR frame the ground is 1.73 m below the sensor
    assert np.median(scan.points[ground, 2]) == pytest.approx(-RIG.lidar_height, abs=0.02)


def test_lidar_points_agree_with_the_camera_image(drive):
    # measured: ~95 % agree in depth and material; a 1 degree calibration error gives ~75 %
    for index in (10, 95):
        view = drive.render_camera(index)
        scan = drive.render_lidar(index)
        pc = _to_camera(drive, scan.points)
        front = pc[:, 2] > 1.0
        u, v = _project(drive, pc[front])
        w, h = drive.calibration.image_size
        inside = (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
        # the camera's field of view: about 81 x 28 degrees of the forward half
        assert 0.1 < inside.mean() < 0.6
        ui, vi = np.rint(u[inside]).astype(int), np.rint(v[inside]).astype(int)
        depth = pc[front][inside, 2]
        seen = view.depth[vi, ui]
        agree = np.abs(seen - depth) < np.maximum(0.25, 0.03 * depth)
        assert agree.mean() > 0.9
        same_material = view.material[vi, ui] == scan.material[front][inside]
        assert same_material.mean() > 0.85


def test_camera_depth_matches_the_ground_plane(drive):
    view = drive.render_camera(30)
    K = drive.calibration.camera_matrix
    h_cam = RIG.lidar_height + RIG.camera_offset[2]
    rows = np.arange(view.depth.shape[0])
    below = rows > K[1, 2] + 2
    col = view.depth.shape[1] // 2
    road = below & (view.material[:, col] == Material.ASPHALT)
    assert road.sum() > 5
    # a level camera at height h sees the ground at z-depth h * fy / (v - cy)
    expected = h_cam * K[1, 1] / (rows[road] - K[1, 2])
    np.testing.assert_allclose(view.depth[road, col], expected, rtol=1e-6)
    assert np.isinf(view.depth[view.material == Material.NONE]).all()


def test_intensity_depends_on_material(drive):
    scans = [drive.render_lidar(i) for i in (0, 20, 40, 60, 80, 100)]
    mat = np.concatenate([s.material for s in scans])
    inten = np.concatenate([s.points[:, 3] for s in scans])
    paint = inten[mat == Material.LANE_PAINT]
    asphalt = inten[mat == Material.ASPHALT]
    assert len(paint) > 50
    assert len(asphalt) > 1000
    assert paint.mean() > 3 * asphalt.mean()
    glass, facade = inten[mat == Material.GLASS], inten[mat == Material.FACADE]
    assert len(glass) > 50
    assert glass.mean() < 0.5 * facade.mean()


def test_dropouts_and_noise():
    clean = make_drive(2, 0, frames=5, rig=RigConfig(
        image_scale=0.25, lidar_azimuth_steps=720, dropout=0.0, range_noise=0.0
    ))  # fmt: skip
    noisy = make_drive(2, 0, frames=5, rig=RIG)
    a, b = clean.render_lidar(3), noisy.render_lidar(3)
    glass = np.isin(a.material, [Material.GLASS, Material.CAR_GLASS])
    expected = len(a.points) - RIG.dropout * (~glass).sum() - 0.43 * glass.sum()
    assert len(b.points) == pytest.approx(expected, rel=0.02)
    # without noise, ground points of the clean scan lie exactly on the plane
    ground = np.isin(a.material, GROUND)
    np.testing.assert_allclose(a.points[ground, 2], -RIG.lidar_height, atol=1e-4)


def test_rendering_is_deterministic_and_random_access():
    a = make_drive(2, 1, frames=60, rig=RIG)
    b = make_drive(2, 1, frames=60, rig=RIG)
    later_first = b.frame(50)
    b.frame(10)
    for i in (10, 50):
        fa, fb = a.frame(i), (later_first if i == 50 else b.frame(i))
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.points, fb.points)
        np.testing.assert_array_equal(fa.pose, fb.pose)
    # consecutive frames differ (the car moves, the noise is drawn per frame)
    assert not np.array_equal(a.frame(10).image, a.frame(11).image)
