"""The held hypothesis: moved exactly by odometry; without odometry its window widens by
what the random walk allows (the largest speed, the heading steps) until it is held again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liploc_ros.localization.held_hypothesis import HeldHypothesis
from liploc_ros.localization.motion import Motion
from liploc_ros.localization.sequence_config import SequenceConfig

CFG = SequenceConfig(mode_radius_m=10.0, mode_yaw_deg=45.0, max_speed_mps=20.0,
                     random_walk_yaw_deg=4.0, max_gap_s=1.0)  # fmt: skip


def test_nothing_held_holds_any_mode():
    held = HeldHypothesis()
    held.move(Motion(5.0, 0.0, 0.0), 0.1, CFG)
    assert held.pose is None
    assert held.holds(np.array([1e4, -1e4, 3.0]), CFG)


def test_odometry_moves_it_exactly_in_its_own_frame():
    held = HeldHypothesis()
    held.hold(np.array([10.0, 0.0, math.pi / 2]))  # facing north
    held.move(Motion(4.0, 1.0, math.pi / 4), 0.1, CFG)  # 4 m ahead, 1 m left, half left
    np.testing.assert_allclose(held.pose, [9.0, 4.0, 3 * math.pi / 4], atol=1e-12)
    assert held.holds(np.array([9.0, 13.9, 3 * math.pi / 4]), CFG)  # within the mode radius
    assert not held.holds(np.array([9.0, 14.1, 3 * math.pi / 4]), CFG)
    assert not held.holds(np.array([9.0, 4.0, math.pi / 4]), CFG)  # 90 deg off


def test_without_odometry_the_window_widens_by_the_fastest_drive_until_held_again():
    held = HeldHypothesis()
    held.hold(np.array([0.0, 0.0, 0.0]))
    for _ in range(5):  # 0.5 s at 20 m/s at most: 10 m more
        held.move(None, 0.1, CFG)
    np.testing.assert_array_equal(held.pose, [0.0, 0.0, 0.0])
    assert held.holds(np.array([19.9, 0.0, 0.0]), CFG)
    assert not held.holds(np.array([20.1, 0.0, 0.0]), CFG)
    # heading: 45 deg + 3 sigma of five 4-degree steps
    wider = math.radians(45.0 + 3 * 4.0 * math.sqrt(5))
    assert held.holds(np.array([0.0, 0.0, wider - 1e-6]), CFG)
    assert not held.holds(np.array([0.0, 0.0, wider + 1e-3]), CFG)
    held.hold(np.array([15.0, 0.0, 0.0]))  # held again: the window is the mode's again
    assert not held.holds(np.array([25.1, 0.0, 0.0]), CFG)


@pytest.mark.parametrize("dt", [5.0, float("nan"), -1.0])
def test_a_gap_counts_at_most_max_gap_and_a_bad_stamp_as_a_whole_gap_or_none(dt):
    held = HeldHypothesis()
    held.hold(np.array([0.0, 0.0, 0.0]))
    held.move(None, dt, CFG)
    reach = 10.0 + (0.0 if dt < 0 else 20.0)  # at most max_gap_s (1 s) at 20 m/s
    assert held.holds(np.array([reach - 0.01, 0.0, 0.0]), CFG)
    assert not held.holds(np.array([reach + 0.01, 0.0, 0.0]), CFG)
    held.clear()
    assert held.pose is None
