"""Keyframe selection: a standing vehicle gives one entry, spacing holds, 0 keeps all."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.config import from_dict
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ConfigError
from liploc_ros.mapping import KeyframeSelector, MapBuildConfig, select_keyframes


def drive_with_stop() -> np.ndarray:
    """0.5 m steps along x, a stop of 12 more scans at x = 2.0, then on along y."""
    moving = [(0.5 * i, 0.0, 0.0) for i in range(5)]  # 0.0 .. 2.0
    stop = [(2.0, 0.0, 0.0)] * 12
    onward = [(2.0, 0.5 * i, 0.0) for i in range(1, 9)]
    return np.array(moving + stop + onward)


def check_rule(positions: np.ndarray, kept: np.ndarray, d: float) -> None:
    """The rule, frame by frame: kept iff at least d from the last kept position."""
    assert kept[0] == 0
    last = positions[0]
    for i in range(1, len(positions)):
        far = np.linalg.norm(positions[i] - last) >= d
        assert (i in kept) == far, f"frame {i}"
        if far:
            last = positions[i]


def test_a_stop_gives_one_entry_and_spacing_holds():
    positions = drive_with_stop()
    kept = select_keyframes(positions, 1.0)
    stop = range(4, 17)  # the frames at x = 2.0 (the arrival and the 12 repeats)
    assert sum(i in stop for i in kept) == 1
    gaps = np.linalg.norm(np.diff(positions[kept], axis=0), axis=1)
    assert (gaps >= 1.0 - 1e-12).all()
    check_rule(positions, kept, 1.0)
    # a standing vehicle adds nothing however long it stands
    longer = np.concatenate([positions[:5], np.repeat(positions[4:5], 500, 0), positions[17:]])
    assert len(select_keyframes(longer, 1.0)) == len(kept)


def test_zero_distance_keeps_every_scan_even_when_standing():
    positions = drive_with_stop()
    np.testing.assert_array_equal(select_keyframes(positions, 0.0), np.arange(len(positions)))


def test_synthetic_drive_keyframes_follow_the_rule():
    poses = make_drive(1, 0, 40).poses  # 1 m apart along a route with turns
    for d in (0.5, 2.5, 7.0):
        kept = select_keyframes(poses, d)  # 4 x 4 poses are taken as they are
        check_rule(poses[:, :3, 3], kept, d)
    assert len(select_keyframes(poses, 2.5)) < len(select_keyframes(poses, 0.5)) == 40


def test_incremental_selector_matches_and_measures_the_route():
    positions = drive_with_stop()
    selector = KeyframeSelector(1.0)
    flags = [selector.accept(p) for p in positions]
    np.testing.assert_array_equal(np.flatnonzero(flags), select_keyframes(positions, 1.0))
    assert selector.route_length == pytest.approx(2.0 + 4.0)
    assert (selector.seen, selector.kept) == (len(positions), sum(flags))
    # would_accept decides without recording
    before = selector.last_kept.copy()
    assert selector.would_accept(before + np.array([5.0, 0.0, 0.0]))
    assert not selector.would_accept(before)
    np.testing.assert_array_equal(selector.last_kept, before)


def test_frames_without_pose_are_never_kept():
    positions = drive_with_stop()
    positions[0] = np.nan
    positions[7] = np.nan
    kept = select_keyframes(positions, 1.0)
    assert kept[0] == 1
    assert 7 not in kept


def test_bad_arguments():
    with pytest.raises(ConfigError, match="keyframe distance"):
        KeyframeSelector(-1.0)
    with pytest.raises(ConfigError, match="keyframe distance"):
        select_keyframes(np.zeros((3, 3)), float("nan"))
    with pytest.raises(ConfigError, match="N x 3"):
        select_keyframes(np.zeros((3, 2)), 1.0)
    with pytest.raises(ConfigError, match="finite"):
        KeyframeSelector(1.0).accept(np.array([0.0, np.inf, 0.0]))


def test_build_config_validation():
    assert from_dict(MapBuildConfig, {"keyframe_distance": 0, "dtype": "float16"}).dtype == (
        "float16"
    )
    for bad, match in (
        ({"keyframe_distance": -0.5}, "keyframe_distance"),
        ({"batch_size": 0}, "batch_size"),
        ({"workers": -1}, "workers"),
        ({"precision": "fp8"}, "precision"),
        ({"index": "lsh"}, "index"),
        ({"dtype": "int8"}, "dtype"),
        ({"keyframe_distanse": 1.0}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=match):
            from_dict(MapBuildConfig, bad)
