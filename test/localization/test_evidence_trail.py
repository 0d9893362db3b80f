"""The evidence trail: the gate's window sums count metres, not frames, follow one hypothesis,
and the calibrated floors stop (almost) no true frame while a kidnapped track stops at once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.evidence_trail import (
    WINDOW_STEPS,
    EvidenceTrail,
    calibration_windows,
    window_sums,
)
from liploc_ros.localization.fix_gate import GateInputs, GateRule, replay_fixes


def test_a_window_counts_metres_so_a_fast_camera_sums_like_the_calibration_drive():
    # the same stretch of road, a frame per metre or four: the same sums
    per_metre = window_sums([1.0, -2.0, 0.5, 3.0], [1.0] * 4, frame_step_m=1.0)
    assert per_metre == pytest.approx((0.5 + 3.0, -2.0 + 0.5 + 3.0))
    fast = window_sums(np.repeat([1.0, -2.0, 0.5, 3.0], 4), [0.25] * 16, frame_step_m=1.0)
    assert fast == pytest.approx(per_metre)
    # a trail shorter than a window is not tested (NaN), the longer windows first
    short = window_sums([1.0, 2.0], [1.0, 1.0], frame_step_m=1.0)
    assert short[0] == pytest.approx(3.0)
    assert math.isnan(short[1])
    # a standing vehicle adds nothing: the window is the last metres driven
    still = window_sums([1.0, 2.0, 3.0, -9.0, -9.0], [1, 1, 1, 0, 0], frame_step_m=1.0)
    assert still == pytest.approx((5.0, 6.0))


def test_the_trail_follows_one_hypothesis_moved_by_the_odometry():
    trail = EvidenceTrail(frame_step_m=1.0, radius_m=5.0, yaw_rad=math.radians(30))
    pose = np.array([0.0, 0.0, 0.0])
    assert math.isnan(trail.push(pose, None, 1.0, None)[0])
    for x in (1.0, 2.0, 3.0):
        sums = trail.push(np.array([x, 0.0, 0.0]), np.array([x, 0.1, 0.0]), 1.0, 1.0)
    assert sums == pytest.approx((2.0, 3.0))
    # another place dominates: the trail starts again there
    jumped = trail.push(np.array([80.0, 0.0, 0.0]), np.array([4.0, 0.0, 0.0]), -3.0, 1.0)
    assert all(math.isnan(v) for v in jumped)
    # and so does the same place the other way round (the mirror)
    trail.push(np.array([81.0, 0.0, 0.0]), np.array([81.0, 0.0, 0.0]), -3.0, 1.0)
    turned = trail.push(np.array([82.0, 0.0, math.pi]), np.array([82.0, 0.0, 0.0]), 1.0, 1.0)
    assert all(math.isnan(v) for v in turned)


def test_calibration_windows_are_the_trails_sums_along_the_drive():
    rng = np.random.default_rng(3)
    values = rng.normal(size=40)
    positions = np.column_stack([np.cumsum(rng.uniform(0.5, 1.5, 40)), np.zeros(40)])
    table = calibration_windows(values, positions, frame_step_m=1.0)
    trail = EvidenceTrail(frame_step_m=1.0, radius_m=5.0, yaw_rad=1.0)
    previous = None
    for i, (v, xy) in enumerate(zip(values, positions, strict=True)):
        step = None if previous is None else float(np.hypot(*(xy - previous)))
        pose = np.array([xy[0], xy[1], 0.0])
        got = trail.push(pose, None if previous is None else pose, v, step)
        np.testing.assert_allclose(got, table[i], equal_nan=True)
        previous = xy
    assert table.shape == (40, len(WINDOW_STEPS))


def _estimate(evidence: float, windows: tuple[float, ...]) -> PoseEstimate:
    return PoseEstimate(0.0, False, "", None, None, 0.999, 1.0, np.zeros(1, np.int64),
                        np.zeros(1, np.float32), spread_m=1.0, frame_evidence=evidence,
                        window_evidence=windows)  # fmt: skip


def test_the_gate_stops_a_frame_whose_window_is_below_its_floor_and_replays_alike():
    rule = GateRule(0.99, 5.0, frame_floor=-3.0, keep_probability=0.9,
                    window_floors=(-4.0, -5.0))  # fmt: skip
    # each frame above the frame floor, the last two steps together below theirs
    below = GateInputs(0.999, 1.0, -2.5, (-5.0, -6.0))
    assert rule.decide(True, below) == (True, False, "mismatch")
    assert rule.decide(True, GateInputs(0.999, 1.0, -2.5, (-3.5, -4.5)))[1]
    assert rule.decide(True, GateInputs(0.999, 1.0, -2.5, (math.nan, math.nan)))[1]
    # a map calibrated before the windows (no window floors) tests the frame alone
    old = GateRule(0.99, 5.0, frame_floor=-3.0, keep_probability=0.9)
    assert old.decide(True, GateInputs(0.999, 1.0, -2.5, (-9.0, -9.0)))[1]
    run = [_estimate(1.0, (2.0, 3.0)), _estimate(-2.5, (-5.0, -6.0)), _estimate(1.0, (-1.5, -4.0))]
    assert replay_fixes(run, rule).tolist() == [True, False, True]


def test_a_vehicle_standing_still_for_hours_keeps_the_trail_bounded():
    trail = EvidenceTrail(frame_step_m=1.0, radius_m=5.0, yaw_rad=1.0)
    pose = np.zeros(3)
    for _ in range(3):
        trail.push(pose, pose, 1.0, 1.0)
    for _ in range(20_000):  # 30 Hz for 11 minutes, parked
        sums = trail.push(pose, pose, -1.0, 0.0)
    assert len(trail._steps) <= 128
    assert all(math.isnan(v) for v in sums)  # no metres driven: nothing to test
    for _ in range(3):  # it drives off: the windows count again
        sums = trail.push(pose, pose, 2.0, 1.0)
    assert sums == pytest.approx((4.0, 6.0))
