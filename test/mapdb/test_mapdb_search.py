"""Search: exact equals a naive search (ties included); approximate reaches its recall."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.errors import ConfigError, DeviceError, MapError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.indexes import exact as exact_module
from liploc_ros.mapdb.indexes import registry as mapindex_registry
from liploc_ros.mapdb.indexes.approx import DEFAULT_TARGET_RECALL
from liploc_ros.mapdb.indexes.exact import exact_search
from liploc_ros.mapdb.indexes.faiss_support import gpu_count
from liploc_ros.mapdb.indexes.ivf import default_nlist
from liploc_ros.mapdb.synthetic import noisy_queries, route_embeddings, synthetic_map


def naive_search(embeddings: np.ndarray, queries: np.ndarray, k: int):
    """Float64 scores, best first, lower index first among equal scores."""
    scores = np.asarray(queries, np.float64) @ np.asarray(embeddings, np.float64).T
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores))
    order = order[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("num_queries", [1, 3, 40])
def test_exact_search_equals_naive_search(num_queries):
    rng = np.random.default_rng(num_queries)
    emb = rng.standard_normal((5000, 48), dtype=np.float32)
    db = synthetic_map(5000, 48, embeddings=emb)
    queries = rng.standard_normal((num_queries, 48), dtype=np.float32)
    res = db.search(queries, 10)
    want_scores, want_ids = naive_search(emb, queries, 10)
    assert res.indices.dtype == np.int64
    assert res.scores.dtype == np.float32
    assert np.array_equal(res.indices, want_ids)
    assert np.allclose(res.scores, want_scores, rtol=1e-5, atol=1e-4)
    assert np.allclose(res.poses, db.poses_at(want_ids))


@pytest.mark.parametrize("num_queries", [1, 25])
def test_exact_search_breaks_ties_by_lower_index(monkeypatch, num_queries):
    """Small integers make every product exact, so many scores tie exactly."""
    # several blocks, so that ties across blocks are merged too
    monkeypatch.setattr(exact_module, "_BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(exact_module, "_SCAN_BLOCK_ROWS", 3000)
    rng = np.random.default_rng(7)
    emb = rng.integers(-1, 2, (10_000, 6)).astype(np.float32)
    queries = rng.integers(-1, 2, (num_queries, 6)).astype(np.float32)
    db = synthetic_map(10_000, 6, embeddings=emb)
    res = db.search(queries, 50)
    want_scores, want_ids = naive_search(emb, queries, 50)
    assert np.array_equal(res.scores, want_scores.astype(np.float32))
    assert np.array_equal(res.indices, want_ids)


def test_float16_map_search_matches_naive_search():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((3000, 64)).astype(np.float16)
    db = synthetic_map(3000, 64, embeddings=emb)
    queries = rng.standard_normal((5, 64), dtype=np.float32)
    want_scores, want_ids = naive_search(emb, queries, 8)
    for exact in (True, False):
        res = db.search(queries, 8, exact=exact)
        assert np.array_equal(res.indices, want_ids)
        assert np.allclose(res.scores, want_scores, rtol=1e-5, atol=1e-3)
    # Scores are computed in float32 from the stored halves, not in float16.
    assert np.array_equal(exact_search(emb, queries, 8)[1], db.search(queries, 8).indices)


def test_fewer_entries_than_k_pads_with_minus_one():
    db = synthetic_map(3, 16)
    res = db.search(np.ones(16, np.float32), 5)
    assert res.indices.shape == (1, 5)
    assert sorted(res.indices[0, :3].tolist()) == [0, 1, 2]
    assert res.indices[0, 3:].tolist() == [-1, -1]
    assert np.isneginf(res.scores[0, 3:]).all()
    assert np.isnan(res.poses[0, 3:]).all()
    assert np.isfinite(res.poses[0, :3]).all()


def test_bad_queries_are_refused():
    db = synthetic_map(10, 16)
    with pytest.raises(MapError, match=r"shape \(1, 8\), but this map holds 16-d"):
        db.search(np.ones((1, 8), np.float32))
    with pytest.raises(MapError, match="NaN or inf"):
        db.search(np.full(16, np.nan, np.float32))
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        db.search(np.ones(16, np.float32), 0)
    with pytest.raises(ConfigError, match="no approximate index"):
        db.set_search_params(nprobe=4)


def test_gpu_asked_for_without_one_is_a_device_error(tmp_path):
    if gpu_count() > 0:
        pytest.skip("this machine has a GPU for FAISS")
    path = synthetic_map(10, 16).save(tmp_path / "m.map")
    with pytest.raises(DeviceError, match="no GPU"):
        MapDatabase.load(path, gpu=True)


def test_auto_index_policy():
    assert (
        mapindex_registry.resolve_kind("auto", mapindex_registry.AUTO_APPROX_MIN_ENTRIES - 1)
        == "flat"
    )
    assert (
        mapindex_registry.resolve_kind("auto", mapindex_registry.AUTO_APPROX_MIN_ENTRIES) == "ivf"
    )
    assert mapindex_registry.resolve_kind("hnsw", 10) == "hnsw"
    assert default_nlist(1_000_000) == 2000
    assert default_nlist(1000) == 20  # at least 39 training points per list


def _top1_recall(db: MapDatabase, queries: np.ndarray) -> float:
    exact = db.search(queries, 1, exact=True)
    approx = db.search(queries, 1)
    # the approximate scores are exact inner products of the entries it found
    same = approx.indices[:, 0] == exact.indices[:, 0]
    assert np.allclose(approx.scores[same], exact.scores[same], rtol=1e-5)
    return float(np.mean(same))


def test_ivf_finds_the_exact_top1_on_100k_clustered_vectors():
    emb = route_embeddings(100_000, 32, seed=11)
    db = synthetic_map(100_000, 32, embeddings=emb)
    params = db.build_index("ivf", progress=False)
    assert params.kind == "ivf"
    assert params.nlist == default_nlist(100_000)
    assert params.tuned_recall >= DEFAULT_TARGET_RECALL
    queries, _ = noisy_queries(emb, 500, 0.5, seed=5)  # not the tuning queries
    assert _top1_recall(db, queries) >= 0.95
    # Fewer probed lists cost recall on harder queries: the index is really approximate.
    far, _ = noisy_queries(emb, 300, 1.5, seed=6)
    db.set_search_params(nprobe=1)
    assert _top1_recall(db, far) < 0.9
    db.set_search_params(nprobe=params.nlist)
    assert _top1_recall(db, far) >= 0.99  # every list probed: only the 8-bit codes differ


def test_hnsw_finds_the_exact_top1():
    emb = route_embeddings(5000, 32, seed=2)
    db = synthetic_map(5000, 32, embeddings=emb)
    params = db.build_index("hnsw", progress=False)
    assert params.kind == "hnsw"
    assert params.ef_search >= params.rerank
    queries, _ = noisy_queries(emb, 300, 0.5, seed=9)
    assert _top1_recall(db, queries) >= 0.95


def test_duplicate_entries_come_out_lowest_index_first():
    rng = np.random.default_rng(4)
    emb = rng.standard_normal((2000, 24), dtype=np.float32)
    emb[[700, 900, 1500]] = emb[300]
    db = synthetic_map(2000, 24, embeddings=emb)
    for k in (2, 4):
        for q in (emb[300], np.vstack([emb[300]] * 10)):  # one query, and a batch
            res = db.search(q, k)
            assert res.indices[0].tolist() == [300, 700, 900, 1500][:k]
            assert res.scores[0, 0] == res.scores[0, 1]
