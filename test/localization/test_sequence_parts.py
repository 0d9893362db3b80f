"""The sequence filter's parts on their own: the dominant mode, resampling and weights of
the particles, and the configuration (physical values and targets only)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError
from liploc_ros.localization.particles import (
    dominant_mode,
    effective_count,
    normalized,
    systematic_resample,
)
from liploc_ros.localization.sequence_config import SequenceConfig

# ----------------------------------------------------------------------------- particles


def cluster(centre, n, spread, gen):
    p = np.empty((n, 3))
    p[:, 0] = centre[0] + gen.uniform(-spread, spread, n)
    p[:, 1] = centre[1] + gen.uniform(-spread, spread, n)
    p[:, 2] = centre[2] + gen.uniform(-0.1, 0.1, n)
    return p


def test_estimate_is_the_dominant_mode_not_the_mean():
    gen = np.random.default_rng(0)
    a = cluster((0.0, 0.0, 0.0), 300, 1.5, gen)
    b = cluster((60.0, 0.0, 0.0), 300, 1.5, gen)
    p = np.concatenate([a, b])
    w = np.concatenate([np.full(300, 0.6 / 300), np.full(300, 0.4 / 300)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.6)
    np.testing.assert_array_equal(mode.members, np.arange(600) < 300)
    np.testing.assert_allclose(mode.pose[:2], a[:, :2].mean(axis=0), atol=1e-9)
    assert abs(mode.pose[0] - (w @ p[:, 0])) > 20.0  # the mean lies between the streets
    assert mode.position_std == pytest.approx(1.5 / math.sqrt(3), rel=0.15)
    cov = mode.covariance
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() >= 0
    # weight decides, not the particle count
    w2 = np.concatenate([np.full(300, 0.3 / 300), np.full(300, 0.7 / 300)])
    many = np.concatenate([a, b[:60]])
    w3 = np.concatenate([np.full(300, 0.3 / 300), np.full(60, 0.7 / 60)])
    assert dominant_mode(p, w2, 10.0, 45.0).pose[0] == pytest.approx(60.0, abs=0.5)
    assert dominant_mode(many, w3, 10.0, 45.0).pose[0] == pytest.approx(60.0, abs=0.5)


def test_dominant_mode_separates_headings_and_wraps_them():
    gen = np.random.default_rng(1)
    # one place, two opposite headings: two modes; one of them straddles +-pi
    east = cluster((0.0, 0.0, 0.0), 200, 1.0, gen)
    west = cluster((0.0, 0.0, math.pi), 200, 1.0, gen)
    west[:, 2] = (west[:, 2] + math.pi) % (2 * math.pi) - math.pi
    p = np.concatenate([east, west])
    w = np.concatenate([np.full(200, 0.35 / 200), np.full(200, 0.65 / 200)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.65)
    assert abs(abs(mode.pose[2]) - math.pi) < 0.05
    assert math.sqrt(mode.covariance[2, 2]) < 0.1  # not a spread of 2 pi


def test_dominant_mode_finds_a_mode_split_over_grid_cells():
    # the heavier cloud sits on a corner of the mode grid (cells of mode_radius_m), so its
    # weight is shared by four cells, each lighter than the compact other cloud's one
    gen = np.random.default_rng(2)
    a = cluster((10.0, 10.0, 0.0), 400, 1.0, gen)
    b = cluster((55.0, 55.0, 0.0), 100, 1.0, gen)
    p = np.concatenate([a, b])
    w = np.concatenate([np.full(400, 0.55 / 400), np.full(100, 0.45 / 100)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.55)
    np.testing.assert_allclose(mode.pose[:2], [10.0, 10.0], atol=0.2)


def test_resampling_keeps_counts_proportional_to_weights():
    gen = np.random.default_rng(3)
    w = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    counts = np.bincount(systematic_resample(w, 800, gen), minlength=5)
    np.testing.assert_array_equal(counts, [400, 200, 100, 100, 0])
    for _ in range(20):
        w = gen.random(50) ** 3
        w[gen.random(50) < 0.2] = 0.0
        w /= w.sum()
        idx = systematic_resample(w, 1000, gen)
        counts = np.bincount(idx, minlength=50)
        assert np.abs(counts - 1000 * w).max() < 1.0 + 1e-9  # low variance: within one
        assert (counts[w == 0] == 0).all()
        assert idx.min() >= 0
        assert idx.max() < 50
        assert np.all(np.diff(idx) >= 0)


def test_weights_from_log_weights():
    w = normalized(np.array([1000.0, 1000.0 + math.log(3.0), -1e9]))
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0])
    assert effective_count(np.full(40, 1 / 40)) == pytest.approx(40.0)
    assert effective_count(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "bad",
    [
        {"particles": 5},
        {"particles": 100.0},
        {"particles": True},
        {"seed": 1.5},
        {"neighbours": 0},
        {"inject_top_k": 0},
        {"entry_radius_m": -1.0},
        {"max_speed_mps": float("inf")},
        {"alpha1": -0.01},
        {"alpha3": float("nan")},
        {"lateral_noise": -1.0},
        {"inject_fraction": 1.5},
        {"kidnap_probability": -0.1},
        {"target_precision": 1.0},
        {"target_precision": 0.3},
        {"keep_probability": 0.0},
        {"keep_probability": 0.995},  # above target_precision
        {"heading_tolerance_deg": 200.0},
        {"mode_yaw_deg": 181.0},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        SequenceConfig(**bad)
    with pytest.raises(ConfigError):  # the way the node and the CLI read it
        from_dict(SequenceConfig, bad)


def test_config_accepts_edge_values_and_holds_no_score_scale():
    SequenceConfig(
        particles=10,
        alpha1=0.0,
        alpha2=0.0,
        alpha3=0.0,
        alpha4=0.0,
        inject_fraction=0.0,
        kidnap_probability=0.0,
        target_precision=0.5,
        keep_probability=0.5,
        heading_tolerance_deg=180.0,
    )
    parsed = from_dict(SequenceConfig, {"particles": 300, "target_precision": 0.999, "seed": 4})
    assert parsed == dataclasses.replace(SequenceConfig(), particles=300, target_precision=0.999,
                                         seed=4)  # fmt: skip
    # the score-scale settings of old are gone: they come from the map's calibration
    for gone in ("gain", "z_break_even", "min_support", "lock_support", "min_mode_weight"):
        with pytest.raises(ConfigError, match=gone):
            from_dict(SequenceConfig, {gone: 1.0})
    with pytest.raises(ConfigError):
        from_dict(SequenceConfig, {"particle": 300})
    with pytest.raises(ConfigError):
        from_dict(SequenceConfig, {"inject_fraction": "lots"})
