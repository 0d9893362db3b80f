"""Figures of a localized drive on hand-made estimates: fix ratio, precision, errors, the
distance to the first fix, recovery after an event, and travelled distance over jumps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liploc_ros.evaluation.tracks import fix_errors, relock, track_summary, travelled
from liploc_ros.geometry import se2_matrices
from liploc_ros.localization.estimate import PoseEstimate


def estimate(stamp: float, xyyaw: tuple[float, float, float] | None) -> PoseEstimate:
    """A fix at (x, y, yaw deg), or no fix (None)."""
    pose = None
    if xyyaw is not None:
        x, y, yaw = xyyaw
        pose = se2_matrices(np.array([[x, y, math.radians(yaw)]]), 1.7)[0]
    return PoseEstimate(
        stamp=stamp,
        ok=pose is not None,
        reason="" if pose is not None else "lost",
        pose=pose,
        covariance=np.eye(6) if pose is not None else None,
        confidence=1.0,
        score=0.5,
        indices=np.zeros(1, np.int64),
        scores=np.zeros(1, np.float32),
        state="tracking" if pose is not None else "lost",
    )


def straight(n: int) -> np.ndarray:
    """Truth: along x, 1 m per frame, heading east."""
    xyyaw = np.zeros((n, 3))
    xyyaw[:, 0] = np.arange(n)
    return se2_matrices(xyyaw, 1.7)


def hand_made():
    truth = straight(10)
    truth[9] = np.nan  # no ground truth for the last frame
    fixes = {
        3: (3.0, 1.0, 0.0),  # 1 m off
        4: (4.0, 30.0, 0.0),  # 30 m off: wrong
        5: (8.0, 0.0, 10.0),  # 3 m off, 10 deg
        7: (7.0, -10.0, -20.0),  # 10 m off, 20 deg
        8: (8.0, 0.0, 5.0),  # right there, 5 deg
        9: (9.0, 0.0, 0.0),  # a fix without truth: counted, not judged
    }
    est = [estimate(0.1 * i, fixes.get(i)) for i in range(10)]
    return est, truth


def test_fix_errors():
    est, truth = hand_made()
    ok, err, yaw = fix_errors(est, truth)
    np.testing.assert_array_equal(ok, [0, 0, 0, 1, 1, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(err[[3, 4, 5, 7, 8]], [1.0, 30.0, 3.0, 10.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(yaw[[3, 4, 5, 7, 8]], [0.0, 0.0, 10.0, 20.0, 5.0], atol=1e-9)
    assert np.isnan(err[[0, 1, 2, 6, 9]]).all()
    assert np.isnan(yaw[[0, 1, 2, 6, 9]]).all()


def test_track_summary_by_hand():
    est, truth = hand_made()
    top1 = np.array([1.0, 25.0, np.inf, np.nan, 3.0, 40.0, 2.0, 19.0, 21.0, np.nan])
    s = track_summary(est, truth, top1_error_m=top1)
    assert s["frames"] == 10
    assert s["fixes"] == 6
    assert s["fix_ratio"] == pytest.approx(0.6)
    # judged: errors 1, 30, 3, 10, 0
    assert s["fix_precision_20m"] == pytest.approx(4 / 5)
    assert s["fix_precision_5m"] == pytest.approx(3 / 5)
    assert s["wrong_fixes"] == 1
    assert s["median_error_m"] == pytest.approx(3.0)
    assert s["p95_error_m"] == pytest.approx(26.0)  # 10 + 0.8 * (30 - 10)
    assert s["median_yaw_error_deg"] == pytest.approx(5.0)
    assert s["first_fix_distance_m"] == pytest.approx(3.0)
    assert s["first_fix_error_m"] == pytest.approx(1.0)
    # NaN: not measured; inf: nothing retrieved, a failure; 4 of 8 within 20 m
    assert s["recall_at_1"] == pytest.approx(4 / 8)
    assert "recall_at_1" not in track_summary(est, truth)


def test_track_summary_threshold():
    est, truth = hand_made()
    s = track_summary(est, truth, threshold_m=2.0)
    assert s["fix_precision_20m"] == pytest.approx(2 / 5)  # the key names the default
    assert s["wrong_fixes"] == 3
    assert s["fix_precision_5m"] == pytest.approx(3 / 5)


def test_track_summary_without_fixes():
    truth = straight(5)
    s = track_summary([estimate(0.1 * i, None) for i in range(5)], truth)
    assert s["fix_ratio"] == 0.0
    assert s["fixes"] == 0
    assert s["wrong_fixes"] == 0
    for key in ("fix_precision_20m", "fix_precision_5m", "median_error_m", "p95_error_m",
                "median_yaw_error_deg", "first_fix_distance_m", "first_fix_error_m"):  # fmt: skip
        assert s[key] is None


def test_travelled_ignores_jumps_and_gaps():
    xyyaw = np.zeros((8, 3))
    xyyaw[:, 0] = [0.0, 1.0, 2.5, 102.5, 103.5, 0.0, 104.5, 105.0]
    truth = se2_matrices(xyyaw, 0.0)
    truth[5] = np.nan
    # 1, 1.5, jump (0), 1, gap into and out of the NaN frame (0, 0), 0.5
    np.testing.assert_allclose(travelled(truth), [0, 1, 2.5, 2.5, 3.5, 3.5, 3.5, 4.0])
    assert travelled(straight(1)).tolist() == [0.0]


def kidnap_drive():
    """Truth along x; at frame 5 the vehicle is carried 100 m further. The filter keeps
    fixing where it was (wrong) at 5 and 7, and is right again from frame 9."""
    xyyaw = np.zeros((12, 3))
    xyyaw[:, 0] = np.arange(12) + np.where(np.arange(12) >= 5, 100.0, 0.0)
    truth = se2_matrices(xyyaw, 1.7)
    fixes = {i: (float(i), 0.0, 0.0) for i in range(5)}
    fixes |= {5: (5.0, 0.0, 0.0), 7: (7.0, 0.0, 0.0)}
    fixes |= {i: (xyyaw[i, 0] + 2.0, 0.0, 0.0) for i in range(9, 12)}
    return [estimate(0.1 * i, fixes.get(i)) for i in range(12)], truth


def test_relock_after_a_kidnap():
    est, truth = kidnap_drive()
    assert relock(est, truth, 5) == {"relock_distance_m": pytest.approx(4.0), "wrong_fixes": 2}
    # the window closes before the filter is right again
    assert relock(est, truth, 5, end=9) == {"relock_distance_m": None, "wrong_fixes": 2}
    # at a right fix: relocked at once
    assert relock(est, truth, 2) == {"relock_distance_m": 0.0, "wrong_fixes": 0}
    # with a 1 m threshold the fixes 2 m off are wrong too
    assert relock(est, truth, 8, threshold_m=1.0) == {
        "relock_distance_m": None,
        "wrong_fixes": 3,
    }
    s = track_summary(est, truth)
    assert s["wrong_fixes"] == 2
    assert s["first_fix_distance_m"] == 0.0
