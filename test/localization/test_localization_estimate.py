"""estimate_pose on hand-built top-k: pose, covariance, the calibrated place probability and
the no-fix rules. The evidence model is a hand-made one: log ratio ``2 (z - 1)`` (the ratio
of N(2, 1) to N(0, 1) at the place), so every figure can be computed here by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.estimate import (
    AMBIGUOUS,
    DISAGREE,
    NO_MATCH,
    estimate_pose,
    message_fields,
    pose_deltas,
)
from liploc_ros.localization.evidence import EvidenceModel

CFG = LocalizerConfig()
GRID = np.linspace(-6.0, 6.0, 121)
#: log ratio 2 (z - 1); the null's mean ratio below t: the entries not retrieved count 0.5
EVIDENCE = EvidenceModel(GRID, 2.0 * (GRID - 1.0), 2.0, 1.0, np.full(len(GRID), 0.5))
#: a model that tells nothing apart: ratio 1 everywhere
BLIND = EvidenceModel(GRID, np.zeros(len(GRID)), 2.0, 1.0, np.ones(len(GRID)))


def pose(x: float, y: float, yaw_deg: float = 0.0, z: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


def run(z, places, config: LocalizerConfig = CFG, indices=None, *, entries: int = 5,
        evidence: EvidenceModel = EVIDENCE):  # fmt: skip
    poses = np.stack([pose(*p) for p in places])
    idx = np.arange(len(z)) + 10 if indices is None else np.asarray(indices)
    zz = np.asarray(z, float)
    return estimate_pose(idx, zz * 10.0, poses, 12.5, config, z=zz, evidence=evidence,
                         entries=max(entries, len(zz)))  # fmt: skip


def floors_variance(config: LocalizerConfig = CFG) -> np.ndarray:
    return np.square(config.std_floors)


def test_the_best_entry_pose_is_the_estimate_whatever_the_input_order():
    places = [(5, 0, 30), (0, 0, 0), (3, 1, 10)]
    est = run([2.0, 4.0, 3.0], places, indices=[7, 3, 9])
    assert est.ok, est.reason
    assert est.reason == ""
    assert est.stamp == 12.5
    np.testing.assert_allclose(est.pose, pose(0, 0, 0))
    np.testing.assert_array_equal(est.indices, [3, 9, 7])  # sorted best first
    np.testing.assert_allclose(est.scores, [40.0, 30.0, 20.0], rtol=1e-6)
    np.testing.assert_array_equal(est.used, [3, 9, 7])
    assert est.best_index == 3
    assert est.score == pytest.approx(40.0)
    # weights: the calibrated likelihood ratios exp(2 (z - 1)), normalised
    w = np.exp(2.0 * (np.array([4.0, 3.0, 2.0]) - 1.0))
    np.testing.assert_allclose(est.weights, w / w.sum())


def test_covariance_is_positive_definite_and_grows_with_the_spread():
    z = [6.0, 5.0, 5.0, 5.0, 5.0]
    cfg = LocalizerConfig(max_spread_m=50, target_precision=0.5)
    near = run(z, [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)], cfg)
    far = run(z, [(0, 0), (12, 0), (0, 12), (-12, 0), (0, -12)], cfg)
    for est in (near, far):
        cov = est.covariance
        assert cov.shape == (6, 6)
        np.testing.assert_allclose(cov, cov.T)
        assert np.linalg.eigvalsh(cov).min() > 0
        assert (np.diag(cov) >= floors_variance() - 1e-12).all()
    assert far.covariance[0, 0] > near.covariance[0, 0] > floors_variance()[0]
    assert far.spread_m > near.spread_m > 0
    # the weighted second moment about the best match, plus the floor
    d = np.array([12.0, 0, -12, 0])
    expected = float(np.sum(far.weights[1:] * d**2)) + CFG.min_position_std_m**2
    assert far.covariance[0, 0] == pytest.approx(expected)


def test_a_single_clear_match_gets_exactly_the_floors():
    est = run([6.0, -5.0, -5.0], [(0, 0), (40, 0), (0, 40)])
    assert est.ok
    np.testing.assert_allclose(est.covariance, np.diag(floors_variance()), atol=1e-8)
    assert est.confidence > 0.99


def test_floors_are_configurable_and_never_zero():
    cfg = LocalizerConfig(min_position_std_m=2.0, min_yaw_std_deg=1.0)
    est = run([6.0], [(0, 0)], cfg)
    np.testing.assert_allclose(np.sqrt(np.diag(est.covariance))[[0, 5]], [2.0, math.radians(1.0)])
    for bad in ({"min_position_std_m": 0.0}, {"min_roll_pitch_std_deg": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            LocalizerConfig(**bad)


def test_the_confidence_is_the_calibrated_probability_of_the_place_among_all_entries():
    # the place: z 5 and 4 (within agree_radius_m), a rival 50 m away z 2, and 97 entries
    # not retrieved at the null's mean ratio below (0.5 each)
    est = run([5.0, 4.0, 2.0], [(0, 0), (3, 0), (50, 0)], LocalizerConfig(max_spread_m=100),
              entries=100)  # fmt: skip
    lr = np.exp(2.0 * (np.array([5.0, 4.0, 2.0]) - 1.0))
    expected = (lr[0] + lr[1]) / (lr.sum() + 97 * 0.5)
    assert est.confidence == pytest.approx(expected)
    assert est.ok == (expected >= CFG.target_precision)


def test_the_same_scores_on_a_bigger_map_are_less_sure():
    """Ten times more entries: ten times more look-alikes that did not make the top-k."""
    places = [(0, 0), (2, 0)]
    small = run([5.2, 5.0], places, entries=100)
    big = run([5.2, 5.0], places, entries=10_000)
    assert small.confidence > 0.99 > big.confidence
    assert small.ok
    assert not big.ok
    assert big.reason == AMBIGUOUS


def test_a_model_that_tells_nothing_apart_never_fixes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        z = np.sort(rng.normal(2.5, 1.0, 5))[::-1]
        est = run(z, [(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)], entries=300, evidence=BLIND)
        assert not est.ok
        assert est.confidence <= 5 / 300 + 1e-12


def test_matches_that_disagree_beyond_max_spread_give_no_fix():
    tie = run([5.0, 5.0], [(0, 0), (100, 0)], LocalizerConfig(target_precision=0.5))
    assert not tie.ok
    assert tie.reason == DISAGREE
    assert tie.spread_m == pytest.approx(math.sqrt(0.5 * 100**2))
    # the same far match with a much lower score hardly weighs: a fix
    weak = run([6.0, 1.0], [(0, 0), (100, 0)])
    assert weak.ok
    assert weak.spread_m < CFG.max_spread_m


def test_nothing_retrieved_is_no_match():
    est = estimate_pose(np.array([-1, -1]), np.array([-np.inf, -np.inf]),
                        np.full((2, 4, 4), np.nan), 3.0, CFG, z=np.full(2, np.nan),
                        evidence=EVIDENCE, entries=10)  # fmt: skip
    assert not est.ok
    assert est.reason == NO_MATCH
    assert est.best_index == -1
    assert est.confidence == 0.0
    assert math.isnan(est.score)


def test_padding_entries_are_ignored():
    poses = np.stack([pose(0, 0), np.full((4, 4), np.nan)])
    est = estimate_pose(np.array([4, -1]), np.array([60.0, -np.inf]), poses, 0.0, CFG,
                        z=np.array([6.0, np.nan]), evidence=EVIDENCE, entries=2)  # fmt: skip
    assert est.ok
    assert est.weights.shape == (1,)
    np.testing.assert_array_equal(est.indices, [4, -1])


def test_only_the_top_k_enter_the_estimate():
    est = run([6.0, 5.9, 5.8], [(0, 0), (0, 0), (500, 0)], LocalizerConfig(top_k=2))
    assert est.ok
    assert est.weights.shape == (2,)
    assert est.spread_m == 0.0
    assert len(est.indices) == 3


def test_yaw_spread_is_wrapped_across_pi():
    across = run([6.0, 6.0, 6.0], [(0, 0, 179.0), (0, 0, -179.0), (0, 0, 178.0)])
    opposite = run([6.0, 6.0, 6.0], [(0, 0, 179.0), (0, 0, -1.0), (0, 0, 0.0)])
    yaw_var = math.radians(CFG.min_yaw_std_deg) ** 2
    # 2 and 1 degrees apart, not 358
    expected = yaw_var + (math.radians(2.0) ** 2 + math.radians(1.0) ** 2) / 3
    assert across.covariance[5, 5] == pytest.approx(expected, rel=1e-6)
    assert opposite.covariance[5, 5] > 1.0  # headings 180 degrees apart: about pi^2 * 2/3
    deltas = pose_deltas(np.stack([pose(0, 0, -179.0)]), pose(0, 0, 179.0))
    assert deltas[0, 5] == pytest.approx(math.radians(2.0))
    floor = math.radians(CFG.min_roll_pitch_std_deg) ** 2
    np.testing.assert_allclose(np.diag(across.covariance)[3:5], [floor, floor], rtol=1e-9)


def test_confidence_is_monotonic_in_the_score_gap():
    places = [(0, 0), (80, 0), (0, 80), (-80, 0), (0, -80)]
    cfg = LocalizerConfig(max_spread_m=1000.0)
    gaps = np.linspace(0.0, 2.0, 11)
    conf = [run([4.0 + g, 4.0, 3.9, 3.8, 3.7], places, cfg).confidence for g in gaps]
    assert all(b >= a for a, b in itertools.pairwise(conf))
    assert conf[-1] > conf[0]
    rivals = np.linspace(2.0, 4.0, 11)
    conf = [run([4.0, r, 2.0, 2.0, 2.0], places, cfg).confidence for r in rivals]
    assert all(b <= a for a, b in itertools.pairwise(conf))
    assert conf[-1] < conf[0]
    assert all(0.0 <= c <= 1.0 for c in conf)


def test_message_fields():
    est = run([6.0, 5.0], [(3, 4, 90.0, 1.5), (5, 4, 80.0)])
    position, quat, cov = message_fields(est)
    np.testing.assert_allclose(position, [3, 4, 1.5])
    np.testing.assert_allclose(np.abs(quat), [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)
    assert cov.shape == (36,)
    np.testing.assert_allclose(cov.reshape(6, 6), est.covariance)
    with pytest.raises(ValueError, match="no fix"):
        message_fields(run([5.0, 5.0], [(0, 0), (100, 0)]))


def test_config_is_strict_and_holds_no_score_scale():
    cfg = from_dict(LocalizerConfig, {"top_k": 3, "target_precision": 0.95})
    assert cfg.top_k == 3
    assert cfg.target_precision == 0.95
    with pytest.raises(ConfigError, match="topk"):
        from_dict(LocalizerConfig, {"topk": 3})
    # the score-scale settings of old are gone: the calibration says what a score means
    for gone in ("min_score", "temperature", "temperature_mode", "min_confidence"):
        with pytest.raises(ConfigError, match=gone):
            from_dict(LocalizerConfig, {gone: 1.0})
    for bad in ({"top_k": 0}, {"max_spread_m": 0.0}, {"target_precision": 1.0},
                {"target_precision": 0.2}, {"agree_radius_m": float("nan")}):  # fmt: skip
        with pytest.raises(ConfigError):
            LocalizerConfig(**bad)
