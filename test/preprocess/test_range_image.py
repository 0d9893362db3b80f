"""Range projection: hand-computed tiny clouds, and agreement with a naive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liploc_ros.errors import ConfigError, EmptyCloudError, PreprocessError
from liploc_ros.preprocess import (
    SENSOR_PRESETS,
    RangeImageConfig,
    project_range,
    range_image,
    sensor_preset,
)
from liploc_ros.preprocess.reference import naive_range_image

HDL = RangeImageConfig()  # authors' HDL-64E: 64 x 900, +3 / -25 deg, 50 m


def point(rng: float, yaw_deg: float, pitch_deg: float) -> list[float]:
    """A point at range, azimuth (left positive, as atan2(y, x)) and elevation."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return [
        rng * math.cos(pitch) * math.cos(yaw),
        rng * math.cos(pitch) * math.sin(yaw),
        rng * math.sin(pitch),
        0.5,
    ]


def cloud(*pts: list[float]) -> np.ndarray:
    return np.asarray(pts, dtype=np.float32)


def test_single_point_straight_ahead_lands_in_the_centre_column():
    # yaw 0 -> u = 0.5 * 900 = 450 -> column 150 of the crop (300..599);
    # pitch 0 -> v = (1 - 25/28) * 64 = 6.86 -> row 6; 20 m * 5.1 = 102.
    img = range_image(cloud(point(20.0, 0.0, 0.0)), HDL)
    assert img.shape == (32, 300, 3)
    assert img.dtype == np.uint8
    assert (img[6, 150] == 102).all()
    mask = np.ones(img.shape[:2], bool)
    mask[6, 150] = False
    assert (img[mask] == 251).all()


def test_nearest_point_wins_whatever_the_order():
    pts = cloud(point(30.0, 0.0, 0.0), point(10.0, 0.0, 0.0), point(20.0, 0.0, 0.0))
    for perm in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        ranges = project_range(pts[perm], HDL)
        assert ranges[6, 150] == pytest.approx(10.0, abs=1e-5)
    assert (range_image(pts, HDL)[6, 150] == 51).all()


def test_pitch_is_clamped_into_the_image():
    above = cloud(point(10.0, 0.0, 20.0))  # above fov_up: clamped to row 0 (inside the crop)
    assert project_range(above, HDL)[0, 150] > 0
    below = cloud(point(10.0, 0.0, -40.0))  # below fov_down: clamped to row 63 (cropped away)
    assert (project_range(below, HDL) == -1).all()
    full = project_range(below, HDL, window=False)
    assert full.shape == (64, 900)
    assert full[63, 450] == pytest.approx(10.0, abs=1e-5)


def test_azimuth_maps_left_to_lower_columns_and_behind_to_the_edges():
    full = project_range(cloud(point(10.0, 90.0, 0.0), point(12.0, 180.0, 0.0)), HDL, window=False)
    # yaw = -atan2(y, x): a point on the left (+y) has yaw -90 deg -> u = 0.25 * 900 = 225.
    assert full[6, 225] == pytest.approx(10.0, abs=1e-5)
    # straight behind: yaw -pi -> u = 0.
    assert full[6, 0] == pytest.approx(12.0, abs=1e-5)
    # both are outside the forward 120 deg crop
    assert (project_range(cloud(point(10.0, 90.0, 0.0)), HDL) == -1).all()


def test_crop_window_edges():
    # The crop keeps columns 300..599, i.e. yaw in [-60, +60) deg with atan2's sign flipped.
    inside = project_range(cloud(point(10.0, 59.0, 0.0), point(11.0, -59.0, 0.0)), HDL)
    assert inside[6, 2] == pytest.approx(10.0, abs=1e-5)  # u = floor(0.5*(-59/180+1)*900) = 302
    assert inside[6, 297] == pytest.approx(11.0, abs=1e-5)  # u = 597
    outside = project_range(cloud(point(10.0, 61.0, 0.0), point(10.0, -61.0, 0.0)), HDL)
    assert (outside == -1).all()
    # rows: the upper half, +3 deg down to about -11 deg
    assert (project_range(cloud(point(10.0, 0.0, -10.5)), HDL) > 0).any()
    assert (project_range(cloud(point(10.0, 0.0, -11.5)), HDL) == -1).all()


def test_range_limits_and_distance_threshold():
    pts = cloud(point(49.9, 0.0, 0.0), point(50.0, 10.0, 0.0), point(70.0, -10.0, 0.0))
    img = project_range(pts, HDL)
    assert (img > 0).sum() == 1  # 50 m and beyond are dropped (max_range is exclusive)
    thr = sensor_preset("hdl64e", distance_threshold=30.0)
    assert (project_range(pts, thr) == -1).all()
    gray = range_image(pts, HDL)
    # 49.9 m * 5.1 = 254.49 -> 254, one pixel; every other pixel is empty (251)
    assert sorted(np.unique(gray[..., 0]).tolist()) == [251, 254]
    assert (gray[..., 0] == 254).sum() == 1


def test_clean_mode_uses_zero_for_empty_pixels():
    clean = sensor_preset("hdl64e", empty_mode="clean")
    img = range_image(cloud(point(20.0, 0.0, 0.0)), clean)
    assert img[6, 150, 0] == 102
    assert img.sum() == 102 * 3


def test_nan_and_inf_points_are_dropped():
    pts = cloud(point(20.0, 0.0, 0.0), [np.nan, 1.0, 1.0, 0.0], [np.inf, 0.0, 0.0, 0.0])
    ranges = project_range(pts, HDL)
    assert (ranges > 0).sum() == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 4), np.float32), "empty"),
        (np.full((5, 4), np.nan, np.float32), "no finite point"),
        (np.zeros((5, 2), np.float32), "N x 3 or N x 4"),
        (np.zeros(12, np.float32), "N x 3 or N x 4"),
        (np.zeros((5, 4), np.int32), "floats"),
    ],
)
def test_bad_clouds_raise_clear_errors(bad, message):
    with pytest.raises(PreprocessError, match=message):
        range_image(bad, HDL)


def test_empty_cloud_is_its_own_error_type():
    with pytest.raises(EmptyCloudError):
        range_image(np.zeros((0, 3), np.float32), HDL)


def test_n_by_3_float64_input_is_accepted():
    pts = cloud(point(20.0, 0.0, 0.0))[:, :3].astype(np.float64)
    assert range_image(pts, HDL)[6, 150, 0] == 102


@pytest.mark.parametrize("name", sorted(SENSOR_PRESETS))
@pytest.mark.parametrize("crop", [True, False])
def test_fast_projection_equals_the_naive_reference(name, crop):
    cfg = sensor_preset(name, crop=crop)
    rng = np.random.default_rng(7)
    n = 40_000
    yaw = rng.uniform(-np.pi, np.pi, n)
    pitch = np.radians(rng.uniform(cfg.fov_down_deg - 5, cfg.fov_up_deg + 5, n))
    r = rng.uniform(0.5, cfg.max_range * 1.2, n)
    pts = np.stack(
        [
            r * np.cos(pitch) * np.cos(yaw),
            r * np.cos(pitch) * np.sin(yaw),
            r * np.sin(pitch),
            rng.uniform(0, 1, n),
        ],
        axis=1,
    ).astype(np.float32)
    # Exact pixel borders are where a careless pre-filter would lose points.
    border = pts[:2000].copy()
    cols = rng.integers(0, cfg.width, 2000)
    border_yaw = (2.0 * cols / cfg.width - 1.0) * np.pi
    border[:, 0] = 10 * np.cos(border_yaw)
    border[:, 1] = -10 * np.sin(border_yaw)
    border[:, 2] = 0.0
    pts = np.concatenate([pts, border])
    # heading 0 (the forward crop) takes the authors' path, bit for bit
    np.testing.assert_array_equal(
        range_image(pts, cfg, heading_deg=0.0), naive_range_image(pts, cfg)
    )


def _random_cloud(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-np.pi, np.pi, n)
    pitch = np.radians(rng.uniform(-26.0, 4.0, n))
    r = rng.uniform(0.5, 60.0, n)
    return np.stack(
        [
            r * np.cos(pitch) * np.cos(yaw),
            r * np.cos(pitch) * np.sin(yaw),
            r * np.sin(pitch),
            rng.uniform(0, 1, n),
        ],
        axis=1,
    ).astype(np.float32)


def test_a_crop_at_a_quarter_turn_is_the_forward_crop_of_the_turned_cloud():
    pts = _random_cloud(30_000, 11)
    x, y = pts[:, 0].copy(), pts[:, 1].copy()
    behind = pts.copy()
    behind[:, 0], behind[:, 1] = -x, -y  # the cloud turned by 180 degrees
    left = pts.copy()
    left[:, 0], left[:, 1] = y, -x  # in the frame turned by +90 (its x axis is the LiDAR's y)
    forward = range_image(pts, HDL)
    rear = range_image(pts, HDL, heading_deg=180.0)
    np.testing.assert_array_equal(rear, range_image(behind, HDL))
    np.testing.assert_array_equal(rear, naive_range_image(behind, HDL))
    np.testing.assert_array_equal(range_image(pts, HDL, heading_deg=90.0), range_image(left, HDL))
    np.testing.assert_array_equal(
        range_image(pts, HDL, heading_deg=-270.0), range_image(left, HDL)
    )
    np.testing.assert_array_equal(range_image(pts, HDL, heading_deg=360.0), forward)
    assert not np.array_equal(rear, forward)  # the rear crop sees other points


def test_a_crop_faces_its_heading_counter_clockwise():
    # a point 30 degrees to the left lands in the centre column of the crop facing 30
    ahead = cloud(point(20.0, 30.0, 0.0))
    img = range_image(ahead, HDL, heading_deg=30.0)
    assert (img[6, 150] == 102).all()
    assert (img[..., 0] != 251).sum() == 1
    assert (range_image(ahead, HDL, heading_deg=-30.0)[..., 0] == 251).all()  # out of view
    # an arbitrary heading equals the cloud turned the other way, up to float32 rounding
    pts = _random_cloud(5_000, 3)
    h = np.radians(47.0)
    turned = pts.copy()
    turned[:, 0] = np.cos(h) * pts[:, 0] + np.sin(h) * pts[:, 1]
    turned[:, 1] = np.cos(h) * pts[:, 1] - np.sin(h) * pts[:, 0]
    a = project_range(pts, HDL, heading_deg=47.0)
    b = project_range(turned, HDL)
    assert np.mean(a == b) > 0.99  # only points on a pixel border may move


def test_presets_project_their_own_field_of_view():
    for name, cfg in SENSOR_PRESETS.items():
        top = project_range(cloud(point(10.0, 0.0, cfg.fov_up_deg - 0.01)), cfg, window=False)
        bottom = project_range(cloud(point(10.0, 0.0, cfg.fov_down_deg + 0.01)), cfg, window=False)
        assert top[0].max() > 0, name
        assert bottom[-1].max() > 0, name


def test_unknown_preset_and_bad_config():
    with pytest.raises(ConfigError, match="unknown LiDAR sensor preset"):
        sensor_preset("hdl128")
    with pytest.raises(ConfigError, match="fov_up_deg"):
        RangeImageConfig(fov_up_deg=-30.0)
