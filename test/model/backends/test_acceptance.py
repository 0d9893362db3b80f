"""The recall guarantee's arithmetic: cosine to fp32, Recall@1 against an fp32 map, the verdict
and its bounds, and the calibration set's split into calibration and held-out frames."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.errors import ConfigError, DatasetError, VerificationError
from liploc_ros.model.backends.acceptance import (
    References,
    Verification,
    allowed_recall_drop,
    judge,
    recall_at_1,
)
from liploc_ros.model.backends.calibration import CalibrationConfig, split_indices


def _references(n: int = 100, dim: int = 16, seed: int = 0) -> References:
    """A map whose entry i is query i's match, 30 m apart along a line."""
    rng = np.random.default_rng(seed)
    camera = rng.standard_normal((n, dim)).astype(np.float32)
    camera /= np.linalg.norm(camera, axis=1, keepdims=True)
    lidar = camera + 0.05 * rng.standard_normal((n, dim)).astype(np.float32)
    positions = np.stack([30.0 * np.arange(n), np.zeros(n)], axis=1)
    return References(camera, lidar, positions)


def test_recall_at_1_counts_matches_within_20_m():
    refs = _references()
    recall, best = recall_at_1(refs.camera, refs.lidar, refs.positions)
    assert recall == 1.0
    np.testing.assert_array_equal(best, np.arange(100))
    # every query matched to its neighbour 30 m away: wrong at 20 m
    shifted = np.roll(refs.lidar, 1, axis=0)
    assert recall_at_1(refs.camera, shifted, refs.positions)[0] == 0.0


def test_the_same_embeddings_pass_and_the_figures_say_so():
    refs = _references()
    result = judge("openvino", "int8", "camera", refs.camera.copy(), refs, "synthetic:1")
    assert result.passed
    assert result.cosine_mean == pytest.approx(1.0)
    assert (result.recall, result.recall_fp32, result.top1_agreement) == (1.0, 1.0, 1.0)
    assert "accepted" in result.summary()
    result.raise_if_refused()  # nothing raised
    assert Verification.from_dict(result.to_dict()) == result


def test_a_low_cosine_is_refused_with_its_figures():
    refs = _references()
    noisy = refs.lidar + 0.4 * np.random.default_rng(1).standard_normal(refs.lidar.shape)
    result = judge("onnxruntime", "int8", "lidar", noisy.astype(np.float32), refs, "s")
    assert result.cosine_mean < 0.98
    assert not result.passed
    with pytest.raises(VerificationError, match=r"REFUSED.*cosine to fp32 mean 0\.\d+"):
        result.raise_if_refused()


def test_a_recall_drop_beyond_the_tolerance_is_refused_even_at_a_high_cosine():
    refs = _references(n=200)
    queries = refs.camera.copy()
    # four queries (0.02 of 200) pulled towards a place 1.8 km away: each keeps a cosine of
    # about 0.6 to its fp32 embedding, so the mean stays above 0.99
    for i in (10, 50, 90, 130):
        queries[i] = 0.6 * refs.camera[i] + 0.8 * refs.lidar[i + 60]
    result = judge("torch", "bf16", "camera", queries, refs, "s")
    assert result.cosine_mean > 0.99
    assert result.recall == pytest.approx(1.0 - 4 / 200)
    assert not result.passed
    # one query (0.005) is within the 0.01 tolerance
    queries = refs.camera.copy()
    queries[10] = 0.6 * refs.camera[10] + 0.8 * refs.lidar[70]
    assert judge("torch", "bf16", "camera", queries, refs, "s").passed


def test_the_allowed_drop_is_0_01_or_one_query_on_small_sets():
    assert allowed_recall_drop(300) == pytest.approx(0.01)
    assert allowed_recall_drop(100) == pytest.approx(0.01)
    assert allowed_recall_drop(40) == pytest.approx(1 / 40)


def test_held_out_and_calibration_frames_are_disjoint_and_spread_out():
    posed = np.ones(1000, bool)
    held, calib = split_indices(1000, posed, CalibrationConfig(frames=300, held_out=100))
    assert (len(held), len(calib)) == (100, 300)
    assert not set(held) & set(calib)
    assert (held[0], held[-1]) == (0, 999)  # spread over the whole drive
    assert calib[-1] > 900
    # a short drive gives a quarter to the held-out frames
    held, calib = split_indices(120, np.ones(120, bool), CalibrationConfig(300, 100))
    assert (len(held), len(calib)) == (30, 90)
    # held-out frames need a pose
    posed = np.zeros(50, bool)
    posed[::5] = True
    held, _ = split_indices(50, posed, CalibrationConfig(frames=10, held_out=5))
    assert all(posed[i] for i in held)
    with pytest.raises(DatasetError, match="frame"):
        split_indices(10, np.zeros(10, bool), CalibrationConfig(frames=5, held_out=5))
    with pytest.raises(ConfigError):
        CalibrationConfig(frames=-1)
