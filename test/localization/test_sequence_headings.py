"""Maps with several crops per keyframe: the localizers take a keyframe's crops as
alternatives of heading, not as places competing with each other.

A reversed drive on a map built driving forward sees, through its forward camera, what the
mapping drive's LiDAR saw behind it: only the rear crops (heading 180) can explain it, and
a match then also tells the vehicle's heading.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from sequence_helpers import Town, make_town, odometry, staircase, stamps, truth_poses

from liploc_ros.evaluation.tracks import track_summary
from liploc_ros.localization.calibration import LabelledDrive, calibrate
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.estimate import best_places, estimate_pose
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.motion import motions_from_odometry
from liploc_ros.localization.sequence import (
    SequenceFilter,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig

SETTLE = 40


@functools.lru_cache(maxsize=1)
def town2() -> Town:
    return make_town(0, headings_deg=(0.0, 180.0))


@functools.lru_cache(maxsize=1)
def evidence() -> EvidenceModel:
    """The two-crop town calibrated on a labelled forward drive (noise seed 9)."""
    r = staircase()
    drive = LabelledDrive(town2().queries(r, seed=9), truth_poses(r), odometry(r, seed=9))
    return calibrate(town2().database, [drive], model_fingerprint="town2", same_drive=False,
                     config=SequenceConfig(particles=500)).evidence()  # fmt: skip


def reversed_route() -> np.ndarray:
    """The staircase driven backwards: west and south, facing the way it goes."""
    r = staircase()[::-1].copy()
    r[:, 2] = np.angle(np.exp(1j * (r[:, 2] + math.pi)))
    return r


def test_the_town_holds_two_crops_per_keyframe_with_turned_poses():
    db = town2().database
    assert db.entries_per_keyframe == 2
    kf = np.asarray(db.keyframes)
    assert np.array_equal(kf[0::2], kf[1::2])
    np.testing.assert_allclose(db.positions[0::2], db.positions[1::2])
    yaw = Rotation.from_quat(db.orientations).as_euler("ZYX")[:, 0]
    turn = np.angle(np.exp(1j * (yaw[1::2] - yaw[0::2])))
    np.testing.assert_allclose(np.abs(turn), math.pi, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_reversed_drive_tracks_on_the_rear_crops_with_the_right_heading(seed):
    route = reversed_route()
    q = town2().queries(route, seed=1 + seed)
    n = len(route)
    loc = SequenceFilter(town2().database, evidence(), SequenceConfig(particles=500, seed=seed))
    est = run_sequence(loc, q, stamps(n), motions_from_odometry(odometry(route, seed=5), n))
    s = track_summary(est, truth_poses(route))
    ok = np.array([e.ok for e in est])
    assert ok[SETTLE:].mean() >= 0.95
    assert s["wrong_fixes"] == 0
    assert s["median_yaw_error_deg"] < 3.0
    # the published heading is the reversed one, not the mapping drive's
    yaw = np.array([math.atan2(e.pose[1, 0], e.pose[0, 0]) for e in est if e.ok])
    truth = route[ok, 2]
    assert np.median(np.abs(np.angle(np.exp(1j * (yaw - truth))))) < math.radians(5)


def test_the_field_asks_for_every_crop_of_the_nearest_keyframes():
    field = MapField(town2().database, SequenceConfig(neighbours=1))
    assert field.per_keyframe == 2
    db = town2().database
    # (30, 0) on the first east street is keyframe 10: entries 20 (east) and 21 (west)
    np.testing.assert_allclose(db.positions[[20, 21], :2], [[30.0, 0.0], [30.0, 0.0]])
    query = np.asarray(db.embeddings[21], np.float64)
    scores = field.score(query, np.array([[30.0, 0.0, math.pi], [30.0, 0.0, 0.0]]))
    # each particle is explained by the crop it faces, though neighbours=1
    np.testing.assert_array_equal(scores.entry, [21, 20])
    llr = evidence().llr(scores.z, scores.distance)
    assert llr[0] > 0 > llr[1]


def test_calibration_measures_the_crop_the_camera_looks_along():
    route = reversed_route()[:120]
    drive = LabelledDrive(town2().queries(route, noise=0.05), truth_poses(route))
    cal = calibrate(town2().database, [drive], model_fingerprint="town2", same_drive=False)
    assert cal.match_mean > 5.0  # a near-perfect match each frame; the forward crop would be ~0


# ------------------------------------------------------------------- single-frame estimate


def _pose(x: float, y: float, yaw_deg: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = (x, y, 0.0)
    return T


def test_best_places_counts_keyframes_not_entries():
    kf = np.array([4, 4, 7, 9, 7, 9, 2])
    valid = np.array([True, True, True, True, True, False, True])
    np.testing.assert_array_equal(best_places(kf, valid, 2), [0, 1, 2, 4])
    np.testing.assert_array_equal(best_places(kf, valid, 3), [0, 1, 2, 3, 4])
    assert best_places(kf, np.zeros(7, bool), 3).size == 0


#: log ratio 2 (z - 1), 0.5 for every entry not retrieved (test_localization_estimate's)
_GRID = np.linspace(-6.0, 6.0, 121)
_EVIDENCE = EvidenceModel(_GRID, 2.0 * (_GRID - 1.0), 2.0, 1.0, np.full(len(_GRID), 0.5))


def _estimate(idx, z, poses, cfg, keyframes=None):
    return estimate_pose(idx, z * 10.0, poses, 1.0, cfg, z=z, evidence=_EVIDENCE, entries=8,
                         keyframes=keyframes)  # fmt: skip


def test_crops_of_one_keyframe_back_each_other_and_widen_only_the_yaw():
    cfg = LocalizerConfig(top_k=2, target_precision=0.5)
    # keyframe 0 facing 0 and 180 deg scores nearly alike; keyframe 1 is 30 m away
    poses = np.stack([_pose(0, 0, 0), _pose(0, 0, 180), _pose(30, 0, 0), _pose(30, 0, 180)])
    z = np.array([4.0, 3.9, 3.0, 1.0])
    idx = np.arange(4)
    with_kf = _estimate(idx, z, poses, cfg, keyframes=np.array([0, 0, 1, 1]))
    alone = _estimate(idx[[0, 2]], z[[0, 2]], poses[[0, 2]], cfg)
    # both crops of keyframe 1 and of keyframe 0 enter (top_k counts places)
    assert len(with_kf.weights) == 4
    # the second crop supports its place: more confidence, less spread than without it
    assert with_kf.confidence > alone.confidence
    assert with_kf.spread_m < alone.spread_m
    # and says the heading is uncertain: the yaw variance grows, the position's does not
    assert with_kf.covariance[5, 5] > 10 * alone.covariance[5, 5]
    assert with_kf.covariance[0, 0] < alone.covariance[0, 0]
    np.testing.assert_allclose(with_kf.pose, poses[0])


def test_without_keyframes_every_entry_is_its_own_place():
    cfg = LocalizerConfig(top_k=2)
    poses = np.stack([_pose(0, 0, 0), _pose(0, 0, 180), _pose(30, 0, 0)])
    est = _estimate(np.arange(3), np.array([4.0, 3.9, 3.0]), poses, cfg)
    assert len(est.weights) == 2
