"""One single-frame path: the same camera frames through the node's localizer, ``liploc
localize`` and ``liploc eval``'s stream evaluation give identical estimates, on a map with a
forward and a rear crop per keyframe (where the search depth and the keyframes matter)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
from mapping_helpers import tiny_model

from liploc_ros.cli import main as liploc
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.evaluation.stream import evaluate_stream
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.factory import open_localizer
from liploc_ros.localization.localizer import Localizer
from liploc_ros.mapping import MapBuildConfig, build_map
from liploc_ros.model import Embedder, save_model

SEED, FRAMES = 5, 24


@functools.lru_cache(maxsize=1)
def _query_frames() -> tuple:
    drive = make_drive(SEED, 1, FRAMES)
    return tuple(drive.frame(i, points=False) for i in range(len(drive)))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("single_path")
    loaded = tiny_model(4)
    model = folder / "tiny.safetensors"
    save_model(model, loaded.model, preprocess=loaded.preprocess)
    embedder = Embedder(tiny_model(4), device="cpu", batch_size=4)
    config = MapBuildConfig(keyframe_distance=1.0, workers=0, headings=(0.0, 180.0))
    database, _ = build_map(make_drive(SEED, 0, FRAMES), embedder, config, progress=False)
    assert database.entries_per_keyframe == 2
    return model, database.save(folder / "two_crops.lmap")


def _same(a, b) -> None:
    """The same decision from the same entries; scores equal to float32 rounding (FAISS
    scores a batch of queries with another kernel than a single one)."""
    assert (a.ok, a.reason, a.stamp) == (b.ok, b.reason, b.stamp)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.used, b.used)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-5)
    assert a.confidence == pytest.approx(b.confidence, rel=1e-5)
    assert a.spread_m == pytest.approx(b.spread_m, rel=1e-5, abs=1e-9)
    if a.ok:
        np.testing.assert_array_equal(a.pose, b.pose)  # a map entry's pose, not a sum
        np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-5, atol=1e-12)


def test_node_localize_and_eval_compute_the_same_single_frame_estimates(files, tmp_path):
    model, map_path = files
    config = LocalizerConfig(top_k=3, max_spread_m=60.0)
    frames = _query_frames()
    # the node: open_localizer as localizer_setup calls it, one frame at a time
    node = open_localizer(model, map_path, mode="single", config=config, device="cpu")
    assert isinstance(node, Localizer)
    by_node = [node.localize(f.image, f.stamp) for f in frames]
    # deep enough for every crop of the top_k best keyframes
    assert {len(e.indices) for e in by_node} == {2 * config.top_k}

    # liploc eval --mode single: the query embeddings run through the stream evaluation
    # (encoded one by one, as the node does: a batch rounds float32 sums differently)
    queries = np.concatenate([node.encode([f.image])[0] for f in frames])
    truth = np.stack([f.pose for f in frames])
    stamps = np.array([f.stamp for f in frames])
    by_eval, _ = evaluate_stream(node.database, queries, truth, stamps, None, mode="single",
                                 localizer_config=config)  # fmt: skip
    for a, b in zip(by_node, by_eval, strict=True):
        _same(a, b)

    # liploc localize --mode single, one frame at a time: its per-frame table
    cfg = tmp_path / "loc.yaml"
    cfg.write_text("localizer:\n  top_k: 3\n  max_spread_m: 60.0\n")
    out = tmp_path / "run"
    code = liploc(
        ["localize", "--map", str(map_path), "--model", str(model), "--synthetic",
         f"{SEED}:1:{FRAMES}", "--mode", "single", "--config", str(cfg),
         "--device", "cpu", "--batch-size", "1", "--latency-samples", "0", "--no-plot",
         "--no-progress", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(by_node)
    for row, est in zip(rows, by_node, strict=True):
        assert int(row["ok"]) == int(est.ok)
        assert row["reason"] == est.reason
        assert int(row["best_entry"]) == est.best_index
        assert float(row["confidence"]) == pytest.approx(est.confidence, abs=1e-6)
        top = [int(i) for i in row["top_entries"].split()]
        assert top[: len(est.indices)] == est.indices.tolist()


def test_recall_at_k_counts_distinct_scans_in_localize_as_in_eval():
    """Keyframe 0's two crops lie 50 m from the truth, keyframe 1's 5 m: the two best
    entries are one scan, so Recall@2 finds the right place only when scans are counted."""
    from liploc_ros.evaluation.retrieval import retrieve
    from liploc_ros.evaluation.summary import summarize
    from liploc_ros.localization.estimate import PoseEstimate
    from liploc_ros.localization.run import FrameRecord
    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.mapdb.places import RECALL_COUNTS
    from liploc_ros.mapdb.synthetic import synthetic_info

    poses = np.repeat(np.eye(4)[None], 6, axis=0)
    poses[:, 0, 3] = [50.0, 50.0, 5.0, 5.0, 90.0, 90.0]
    emb = np.eye(6, 8, dtype=np.float32)  # entry i scores the query's i-th component
    database = MapDatabase.from_poses(
        emb, poses, np.arange(6.0), synthetic_info(8),
        heading_deg=np.tile([0.0, 180.0], 3), keyframes=np.repeat(np.arange(3), 2),
    )  # fmt: skip
    found = np.array([0, 1, 2, 4, 3, 5])
    scores = np.linspace(1.0, 0.5, 6).astype(np.float32)
    est = PoseEstimate(0.0, False, "no match", None, None, 0.0, 1.0, found, scores)
    summary = summarize([FrameRecord(0, est, np.eye(4))], database, ks=(1, 2, 3))
    assert summary["recall"] == {"@1": 0.0, "@2": 1.0, "@3": 1.0}
    assert summary["recall_counts"] == RECALL_COUNTS
    # liploc eval's retrieval, the query ranking the entries as above, counts alike
    query = np.zeros((1, 8), np.float32)
    query[0, found] = scores
    evaluated = retrieve(query, emb, np.zeros((1, 2)), poses[:, :2, 3], k=3, threshold_m=20.0,
                         groups=database.keyframes)  # fmt: skip
    assert [evaluated.recall_at(k) for k in (1, 2, 3)] == [0.0, 1.0, 1.0]
