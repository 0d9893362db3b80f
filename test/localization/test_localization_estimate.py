"""estimate_pose on hand-built top-k: pose, covariance, confidence, the no-fix rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError
from liploc_ros.localization import (
    AMBIGUOUS,
    DISAGREE,
    LOW_SCORE,
    NO_MATCH,
    LocalizerConfig,
    estimate_pose,
    message_fields,
    pose_deltas,
    score_weights,
)

CFG = LocalizerConfig()


def pose(x: float, y: float, yaw_deg: float = 0.0, z: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


def run(scores, places, config: LocalizerConfig = CFG, indices=None, scale: float = 1.0):
    poses = np.stack([pose(*p) for p in places])
    idx = np.arange(len(scores)) + 10 if indices is None else np.asarray(indices)
    return estimate_pose(idx, np.asarray(scores, float), poses, 12.5, config, scale=scale)


def floors_variance(config: LocalizerConfig = CFG) -> np.ndarray:
    return np.square(config.std_floors)


def test_the_best_entry_pose_is_the_estimate_whatever_the_input_order():
    places = [(5, 0, 30), (0, 0, 0), (3, 1, 10)]
    est = run([0.5, 0.9, 0.7], places, indices=[7, 3, 9])
    assert est.ok
    assert est.reason == ""
    assert est.stamp == 12.5
    np.testing.assert_allclose(est.pose, pose(0, 0, 0))
    np.testing.assert_array_equal(est.indices, [3, 9, 7])  # sorted best first
    np.testing.assert_allclose(est.scores, [0.9, 0.7, 0.5], rtol=1e-6)
    assert est.best_index == 3
    assert est.score == pytest.approx(0.9)
    assert est.weights.shape == (3,)
    assert est.weights.sum() == pytest.approx(1.0)
    assert est.weights[0] > est.weights[1] > est.weights[2]


def test_covariance_is_positive_definite_and_grows_with_the_spread():
    near = run([1.0, 0.98, 0.96, 0.95, 0.9], [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)])
    far = run([1.0, 0.98, 0.96, 0.95, 0.9], [(0, 0), (12, 0), (0, 12), (-12, 0), (0, -12)])
    for est in (near, far):
        cov = est.covariance
        assert cov.shape == (6, 6)
        np.testing.assert_allclose(cov, cov.T)
        assert np.linalg.eigvalsh(cov).min() > 0
        assert (np.diag(cov) >= floors_variance() - 1e-12).all()
    assert far.covariance[0, 0] > near.covariance[0, 0] > floors_variance()[0]
    assert far.covariance[1, 1] > near.covariance[1, 1]
    assert far.spread_m > near.spread_m > 0
    # the weighted second moment about the best match, plus the floor
    d = np.array([12.0, 0, -12, 0])
    expected = float(np.sum(far.weights[1:] * d**2)) + CFG.min_position_std_m**2
    assert far.covariance[0, 0] == pytest.approx(expected)


def test_a_single_clear_match_gets_exactly_the_floors():
    est = run([1.0, -5.0, -5.0], [(0, 0), (40, 0), (0, 40)])
    assert est.ok
    np.testing.assert_allclose(est.covariance, np.diag(floors_variance()), atol=1e-9)
    assert est.confidence == pytest.approx(1.0)


def test_floors_are_configurable_and_never_zero():
    cfg = LocalizerConfig(min_position_std_m=2.0, min_yaw_std_deg=1.0)
    est = run([1.0], [(0, 0)], cfg)
    np.testing.assert_allclose(np.sqrt(np.diag(est.covariance))[[0, 5]], [2.0, math.radians(1.0)])
    for bad in ({"min_position_std_m": 0.0}, {"min_roll_pitch_std_deg": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            LocalizerConfig(**bad)


def test_low_score_gives_no_fix():
    cfg = LocalizerConfig(min_score=0.8)
    low = run([0.7, 0.6], [(0, 0), (1, 0)], cfg)
    assert not low.ok
    assert low.reason == LOW_SCORE
    assert low.pose is None
    assert low.covariance is None
    assert low.best_pose is not None
    assert low.score == pytest.approx(0.7)
    assert run([0.85, 0.6], [(0, 0), (1, 0)], cfg).ok


def test_matches_that_disagree_beyond_max_spread_give_no_fix():
    tie = run([1.0, 1.0], [(0, 0), (100, 0)])
    assert not tie.ok
    assert tie.reason == DISAGREE
    assert tie.spread_m == pytest.approx(math.sqrt(0.5 * 100**2))
    # the same far match with a much lower score hardly weighs: a fix
    weak = run([1.0, 0.5], [(0, 0), (100, 0)])
    assert weak.ok
    assert weak.spread_m < CFG.max_spread_m
    # and max_spread_m decides
    assert run([1.0, 1.0], [(0, 0), (100, 0)], LocalizerConfig(max_spread_m=80.0)).ok
    assert not run([1.0, 0.97], [(0, 0), (30, 0)], LocalizerConfig(max_spread_m=5.0)).ok


def test_min_confidence_refuses_ambiguous_frames():
    cfg = LocalizerConfig(min_confidence=0.8, max_spread_m=1000.0)
    est = run([1.0, 0.99], [(0, 0), (50, 0)], cfg)
    assert not est.ok
    assert est.reason == AMBIGUOUS


def test_nothing_retrieved_is_no_match():
    est = estimate_pose(np.array([-1, -1]), np.array([-np.inf, -np.inf]),
                        np.full((2, 4, 4), np.nan), 3.0, CFG)  # fmt: skip
    assert not est.ok
    assert est.reason == NO_MATCH
    assert est.best_index == -1
    assert est.confidence == 0.0
    assert math.isnan(est.score)


def test_padding_entries_are_ignored():
    poses = np.stack([pose(0, 0), np.full((4, 4), np.nan)])
    est = estimate_pose(np.array([4, -1]), np.array([1.0, -np.inf]), poses, 0.0, CFG)
    assert est.ok
    assert est.weights.shape == (1,)
    np.testing.assert_array_equal(est.indices, [4, -1])


def test_only_the_top_k_enter_the_estimate():
    est = run([1.0, 0.99, 0.98], [(0, 0), (0, 0), (500, 0)], LocalizerConfig(top_k=2))
    assert est.ok
    assert est.weights.shape == (2,)
    assert est.spread_m == 0.0
    assert len(est.indices) == 3


def test_yaw_spread_is_wrapped_across_pi():
    across = run([1.0, 1.0, 1.0], [(0, 0, 179.0), (0, 0, -179.0), (0, 0, 178.0)])
    opposite = run([1.0, 1.0, 1.0], [(0, 0, 179.0), (0, 0, -1.0), (0, 0, 0.0)])
    yaw_var = math.radians(CFG.min_yaw_std_deg) ** 2
    # 2 and 1 degrees apart, not 358
    expected = yaw_var + (math.radians(2.0) ** 2 + math.radians(1.0) ** 2) / 3
    assert across.covariance[5, 5] == pytest.approx(expected, rel=1e-6)
    assert opposite.covariance[5, 5] > 1.0  # headings 180 degrees apart: about pi^2 * 2/3
    deltas = pose_deltas(np.stack([pose(0, 0, -179.0)]), pose(0, 0, 179.0))
    assert deltas[0, 5] == pytest.approx(math.radians(2.0))
    # roll and pitch stay at their floors for level poses
    floor = math.radians(CFG.min_roll_pitch_std_deg) ** 2
    np.testing.assert_allclose(np.diag(across.covariance)[3:5], [floor, floor], rtol=1e-9)


def test_confidence_is_higher_for_a_clear_winner_than_for_a_tie():
    places = [(0, 0), (60, 0), (0, 60), (-60, 0), (0, -60)]
    cfg = LocalizerConfig(max_spread_m=1000.0)
    clear = run([1.0, 0.5, 0.5, 0.5, 0.5], places, cfg)
    tie = run([1.0, 1.0, 0.5, 0.5, 0.5], places, cfg)
    assert 0.0 <= tie.confidence < clear.confidence <= 1.0
    assert tie.confidence == pytest.approx(0.5, abs=0.01)
    # agreeing matches (same place) do not lower it
    same_place = run([1.0, 1.0, 1.0], [(0, 0), (2, 0), (0, 3)], cfg)
    assert same_place.confidence == pytest.approx(1.0)


def test_confidence_is_monotonic_in_the_score_gap():
    places = [(0, 0), (80, 0), (0, 80), (-80, 0), (0, -80)]
    cfg = LocalizerConfig(max_spread_m=1000.0)
    # the best pulls away from the rest: non-decreasing, then strictly above the start
    gaps = np.linspace(0.0, 0.5, 11)
    conf = [run([1.0 + g, 1.0, 0.9, 0.8, 0.7], places, cfg).confidence for g in gaps]
    assert all(b >= a for a, b in itertools.pairwise(conf))
    assert conf[-1] > conf[0]
    # a disagreeing competitor gains: non-increasing
    rivals = np.linspace(0.5, 1.0, 11)
    conf = [run([1.0, r, 0.5, 0.5, 0.5], places, cfg).confidence for r in rivals]
    assert all(b <= a for a, b in itertools.pairwise(conf))
    assert conf[-1] < conf[0]
    assert all(0.0 <= c <= 1.0 for c in conf)


def test_temperature_modes():
    scores = np.array([100.0, 96.0, 90.0])
    cosine = score_weights(scores, LocalizerConfig(temperature=0.05), scale=80.0)
    absolute = score_weights(
        scores, LocalizerConfig(temperature=4.0, temperature_mode="absolute"), scale=123.0
    )
    np.testing.assert_allclose(cosine, absolute)  # tau = 0.05 * 80 = 4 in both
    np.testing.assert_allclose(cosine[1] / cosine[0], math.exp(-1.0))
    # a colder temperature concentrates the weight on the best
    colder = score_weights(scores, LocalizerConfig(temperature=0.01), scale=80.0)
    assert colder[0] > cosine[0]
    # the scale makes weights independent of the embeddings' magnitude
    np.testing.assert_allclose(score_weights(scores * 3, CFG, 240.0), cosine)


def test_message_fields():
    est = run([1.0, 0.9], [(3, 4, 90.0, 1.5), (5, 4, 80.0)])
    position, quat, cov = message_fields(est)
    np.testing.assert_allclose(position, [3, 4, 1.5])
    np.testing.assert_allclose(np.abs(quat), [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)
    assert cov.shape == (36,)
    np.testing.assert_allclose(cov.reshape(6, 6), est.covariance)
    with pytest.raises(ValueError, match="no fix"):
        message_fields(run([1.0, 1.0], [(0, 0), (100, 0)]))


def test_config_is_strict():
    cfg = from_dict(LocalizerConfig, {"top_k": 3, "min_score": 2, "temperature_mode": "absolute"})
    assert cfg.top_k == 3
    assert cfg.min_score == 2.0
    with pytest.raises(ConfigError, match="topk"):
        from_dict(LocalizerConfig, {"topk": 3})
    with pytest.raises(ConfigError, match="temperature_mode"):
        from_dict(LocalizerConfig, {"temperature_mode": "relative"})
    for bad in ({"top_k": 0}, {"max_spread_m": 0.0}, {"min_confidence": 1.5},
                {"min_score": float("nan")}, {"temperature": -1.0}):  # fmt: skip
        with pytest.raises(ConfigError):
            LocalizerConfig(**bad)
