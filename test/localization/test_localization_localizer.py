"""Localizer with a tiny untrained model: model check, the pipeline's wiring, stamps, timings."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ModelMismatchError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.localizer import STAGES, FrameEstimator, Localizer
from liploc_ros.mapdb import MapDatabase, MapInfo
from liploc_ros.mapping import MapBuildConfig, build_map
from liploc_ros.model import Embedder


@functools.lru_cache(maxsize=1)
def drive():
    return make_drive(5, 0, 40)


@functools.lru_cache(maxsize=1)
def images() -> tuple[np.ndarray, ...]:
    """Camera images of every 8th frame (5 places 8 m apart)."""
    return tuple(drive().frame(i, points=False).image for i in range(0, 40, 8))


def info_for(embedder: Embedder, **kw) -> MapInfo:
    loaded = embedder.loaded
    return MapInfo(
        model_fingerprint=loaded.fingerprint,
        model_name=loaded.model_config.name,
        embed_dim=embedder.embed_dim,
        normalized=loaded.normalize,
        lidar=loaded.preprocess.lidar,
        **kw,
    )


def camera_map(embedder: Embedder) -> MapDatabase:
    """A map whose entries ARE the camera embeddings of the query frames: each query must
    then find its own frame, which checks the wiring from image to pose."""
    frames = list(range(0, 40, 8))
    emb = embedder.embed_images(list(images()))
    poses = drive().poses[frames]
    return MapDatabase.from_poses(emb, poses, drive().stamps[frames], info_for(embedder))


def test_a_map_of_another_model_is_refused(embedder):
    emb = np.random.default_rng(0).standard_normal((3, embedder.embed_dim)).astype(np.float32)
    other = dataclasses.replace(
        info_for(embedder), model_fingerprint="fedcba9876543210", model_name="liploc-vit-s16"
    )
    db = MapDatabase.from_poses(emb, np.stack([np.eye(4)] * 3), np.zeros(3), other)
    with pytest.raises(ModelMismatchError) as err:
        Localizer(embedder, db)
    text = str(err.value)
    assert "fedcba9876543210" in text
    assert "liploc-vit-s16" in text
    assert embedder.fingerprint in text
    assert "liploc-tiny" in text


@pytest.fixture(scope="module")
def own_map(embedder) -> MapDatabase:
    return camera_map(embedder)


def test_each_frame_finds_its_own_entry_through_the_whole_pipeline(embedder, own_map):
    db = own_map
    # an uncalibrated map: the conservative evidence model, whose single-frame place
    # probability stays well under the default 0.99 (the gate is tested elsewhere)
    config = LocalizerConfig(top_k=3, max_spread_m=1000.0, target_precision=0.5)
    loc = Localizer(embedder, db, config)
    loc.warm_up()
    stamps = [100.0 + 0.5 * i for i in range(len(images()))]
    batch = loc.localize_batch(list(images()), stamps, k=4)
    for i, est in enumerate(batch):
        assert est.stamp == stamps[i]
        assert est.best_index == i
        assert est.ok
        np.testing.assert_allclose(est.pose, db.poses[i], atol=1e-9)
        assert len(est.indices) == 4
        assert len(est.weights) == 3
        assert est.score == pytest.approx(float(db.embeddings[i] @ db.embeddings[i]), rel=1e-4)
        assert set(est.timings_ms) == {*STAGES, "total"}
        assert est.timings_ms["total"] == pytest.approx(sum(est.timings_ms[s] for s in STAGES))
    # one frame at a time gives the same result, with caller-timed stages added
    single = loc.localize(images()[2], 7.25, timings_ms={"decode": 1.5})
    assert single.stamp == 7.25
    assert single.best_index == 2
    np.testing.assert_array_equal(single.indices, batch[2].indices[:3])
    assert single.timings_ms["decode"] == 1.5
    assert single.timings_ms["total"] == pytest.approx(
        1.5 + sum(single.timings_ms[s] for s in STAGES)
    )
    # BGR input is converted
    bgr = loc.localize(np.ascontiguousarray(images()[3][:, :, ::-1]), 1.0, order="bgr")
    assert bgr.best_index == 3


def test_the_frame_estimator_looks_up_the_map_poses(own_map):
    db = own_map
    estimator = FrameEstimator(db, LocalizerConfig(target_precision=0.5))
    query = np.asarray(db.embeddings[1:2], np.float32)
    (est,) = estimator.estimate_batch(query, [4.0])
    assert est.ok
    assert est.stamp == 4.0
    assert est.best_index == 1
    np.testing.assert_allclose(est.pose, db.poses[1])
    assert est.used[0] == 1


def test_localize_on_a_map_built_by_build_map(embedder):
    db, _ = build_map(drive(), embedder, MapBuildConfig(keyframe_distance=6.0, workers=0),
                      progress=False)  # fmt: skip
    assert len(db) >= 5
    loc = Localizer(embedder, db, LocalizerConfig(top_k=3))
    stamps = [0.0, 0.1, 1e9 + 0.123456789, 42.0, 3.5]
    results = loc.localize_batch(list(images()), stamps)
    assert [r.stamp for r in results] == stamps
    for est in results:
        assert 0 <= est.best_index < len(db)
        assert 0.0 <= est.confidence <= 1.0
        np.testing.assert_allclose(est.best_pose, db.poses[est.best_index])
        if est.ok:
            assert np.linalg.eigvalsh(est.covariance).min() > 0
        else:
            assert est.reason
            assert est.pose is None
    assert loc.localize_batch([], []) == []
