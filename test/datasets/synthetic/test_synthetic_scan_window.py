"""Windowed synthetic scans: only the rays a range image can show are cast, and the
pictures made from them are exactly those of the full scans."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from liploc_ros.datasets.registry import open_source
from liploc_ros.datasets.synthetic import RigConfig, ScanWindow, make_drive
from liploc_ros.errors import ConfigError
from liploc_ros.preprocess import PreprocessConfig
from liploc_ros.preprocess.range_image import project_range
from liploc_ros.training.pictures import LazyPictures
from liploc_ros.training.sources import scan_options, scan_window

RIG = RigConfig(image_scale=0.25, lidar_azimuth_steps=720)
PRE = PreprocessConfig(lidar_image_size=48)


@pytest.fixture(scope="module")
def drives():
    full = make_drive(4, 1, frames=40, rig=RIG)
    windowed = make_drive(4, 1, frames=40, rig=RIG, lidar_window=scan_window(PRE.lidar))
    return full, windowed


def test_window_of_the_authors_crop():
    window = scan_window(PRE.lidar)  # HDL-64E: 64 x 900, fov +3 .. -25 deg, 50 m
    assert window.azimuth_centre == pytest.approx(0.0, abs=1e-12)
    assert window.azimuth_half_width == pytest.approx(math.pi / 3)
    assert math.degrees(window.min_elevation) == pytest.approx(-11.0)
    assert window.max_elevation == pytest.approx(math.pi / 2)  # row 0 takes all above
    assert window.max_range == 50.0

    uncropped = scan_window(dataclasses.replace(PRE.lidar, crop=False, distance_threshold=30.0))
    assert uncropped.azimuth_half_width == pytest.approx(math.pi)
    assert uncropped.min_elevation == pytest.approx(-math.pi / 2)
    assert uncropped.max_range == 30.0


def test_windowed_scans_give_the_same_range_images(drives):
    full, windowed = drives
    cast = len(windowed.lidar.rows) * len(windowed.lidar.cols)
    assert cast < windowed.lidar.rays / 5
    for index in (0, 17, 39):
        a, b = full[index].points, windowed[index].points
        assert 0 < len(b) < len(a) / 3
        assert np.array_equal(project_range(a, PRE.lidar), project_range(b, PRE.lidar))
        # the windowed points are the full scan's own points (noise included), in order
        rows = {tuple(p) for p in a.tolist()}
        assert all(tuple(p) in rows for p in b.tolist())
        # and every full-scan point well inside the window is among them
        az = np.arctan2(a[:, 1], a[:, 0])
        el = np.arcsin(a[:, 2] / np.linalg.norm(a[:, :3], axis=1))
        inside = (np.abs(az) < math.pi / 3 - 0.01) & (el > math.radians(-11) + 0.01)
        inside &= np.linalg.norm(a[:, :3], axis=1) < 49.0
        kept = {tuple(p) for p in b.tolist()}
        assert inside.sum() > 100
        assert all(tuple(p) in kept for p in a[inside].tolist())


def test_open_source_windows_synthetic_sources_for_the_preprocessing():
    plain = open_source("synthetic:4:1:40")
    windowed = open_source("synthetic:4:1:40", **scan_options("synthetic:4:1:40", PRE))
    assert plain.lidar.window is None
    assert windowed.lidar.window == scan_window(PRE.lidar)
    full_pictures, window_pictures = LazyPictures(plain, PRE), LazyPictures(windowed, PRE)
    for index in (5, 30):
        assert np.array_equal(full_pictures.lidar(index), window_pictures.lidar(index))
        assert np.array_equal(full_pictures.camera(index), window_pictures.camera(index))


def test_a_window_outside_every_beam_is_an_empty_scan():
    above = ScanWindow(min_elevation=math.radians(10), max_elevation=math.radians(20))
    drive = make_drive(4, 1, frames=3, rig=RIG, lidar_window=above)
    assert drive.lidar.fan is None
    assert drive[1].points.shape == (0, 4)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("azimuth_half_width", 0.0, "half width"),
        ("min_elevation", 2.0, "elevations must rise"),
        ("max_range", -1.0, "max_range"),
    ],
)
def test_bad_windows_are_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        ScanWindow(**{field: value})


def test_a_window_over_several_headings_gives_every_crop_of_the_full_scan(drives):
    full, _ = drives
    headings = (0.0, 180.0)
    window = scan_window(PRE.lidar, headings)
    assert window.azimuth_centre == pytest.approx(0.0, abs=1e-12)
    assert window.extra_centres == pytest.approx((math.pi,))
    both = make_drive(4, 1, frames=40, rig=RIG, lidar_window=window)
    forward_only = make_drive(4, 1, frames=40, rig=RIG, lidar_window=scan_window(PRE.lidar))
    cast = len(both.lidar.rows) * len(both.lidar.cols)
    assert len(both.lidar.cols) == 2 * len(forward_only.lidar.cols)  # two disjoint arcs
    assert cast < both.lidar.rays / 2.5
    for index in (3, 31):
        a, b = full[index].points, both[index].points
        assert 0 < len(b) < len(a) / 2
        for heading in headings:
            want = project_range(a, PRE.lidar, heading_deg=heading)
            assert np.array_equal(project_range(b, PRE.lidar, heading_deg=heading), want)
            assert (want > 0).sum() > 100

        # the sides the two crops leave out (60 to 120 degrees left and right) are not cast
        def sideways(points):
            return np.abs(np.abs(np.degrees(np.arctan2(points[:, 1], points[:, 0]))) - 90) < 29

        assert sideways(a).sum() > 100
        assert not sideways(b).any()
    windowed = open_source("synthetic:4:1:40", **scan_options("synthetic:4:1:40", PRE, headings))
    assert windowed.lidar.window == window
    pictures = LazyPictures(windowed, PRE, headings)
    reference = LazyPictures(open_source("synthetic:4:1:40"), PRE, headings)
    for heading in headings:
        assert np.array_equal(pictures.lidar(7, heading), reference.lidar(7, heading))
