"""Evaluation metrics against naive loops, and the two distance conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liploc_ros.errors import ConfigError
from liploc_ros.evaluation.retrieval import (
    chance_curve,
    chance_level,
    recall_curve,
    retrieve,
    top_k,
)
from liploc_ros.preprocess import CameraConfig, PreprocessConfig
from liploc_ros.training.evaluate import evaluate_pictures
from liploc_ros.training.pictures import PictureSet


def _naive_recall(q_emb, db_emb, q_xy, db_xy, k, threshold):
    hits = 0
    for i in range(len(q_emb)):
        scores = [(float(np.dot(q_emb[i], db_emb[j])), j) for j in range(len(db_emb))]
        ranked = [j for _, j in sorted(scores, key=lambda s: -s[0])][:k]
        if any(math.dist(q_xy[i], db_xy[j]) < threshold for j in ranked):
            hits += 1
    return hits / len(q_emb)


def _naive_chance(q_xy, db_xy, threshold):
    total = 0.0
    for q in q_xy:
        total += sum(math.dist(q, d) < threshold for d in db_xy) / len(db_xy)
    return total / len(q_xy)


def _data(seed=0, q=40, m=60, d=8):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(q, d)).astype(np.float32),
        rng.normal(size=(m, d)).astype(np.float32),
        rng.uniform(0, 100, size=(q, 2)),
        rng.uniform(0, 100, size=(m, 2)),
    )


def test_top_k_is_the_exact_inner_product_ranking():
    q, db, _, _ = _data()
    idx, scores = top_k(q, db, 5)
    full = q @ db.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(full, idx, axis=1), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("threshold", [8.0, 20.0])
def test_recall_at_k_matches_loops(k, threshold):
    q, db, q_xy, db_xy = _data(seed=k)
    r = retrieve(q, db, q_xy, db_xy, k=10, threshold_m=threshold)
    assert r.recall_at(k) == pytest.approx(_naive_recall(q, db, q_xy, db_xy, k, threshold))


def test_chance_and_curves_match_loops():
    _, _, q_xy, db_xy = _data(seed=3)
    assert chance_level(q_xy, db_xy, 20.0) == pytest.approx(_naive_chance(q_xy, db_xy, 20.0))
    thresholds = [0.0, 5.0, 12.5, 30.0, 200.0, 1.0]
    got = chance_curve(q_xy, db_xy, thresholds, chunk=7)
    want = [_naive_chance(q_xy, db_xy, t) for t in thresholds]
    np.testing.assert_allclose(got, want)
    errors = np.array([0.0, 3.0, 19.9, 20.0, 55.0])
    np.testing.assert_allclose(recall_curve(errors, [0.0, 3.0, 20.0, 60.0]), [0, 0.2, 0.6, 1.0])


class _Stub(PictureSet):
    """Frames whose pictures carry their index; with the encoders below, camera query i
    retrieves LiDAR entry ``target[i]``."""

    def __init__(self, poses, file_poses, n):
        self.name, self.poses, self.file_poses, self.n = "stub", poses, file_poses, n

    def __len__(self):
        return self.n

    def pair(self, index):
        pic = np.full((8, 8, 3), index, np.uint8)
        return pic, pic[..., 0]


PRE = PreprocessConfig(camera=CameraConfig(image_size=8), lidar_image_size=8)


def _frame_ids(batch: torch.Tensor) -> np.ndarray:
    # undo the normalisation of channel 0 to read back the index the stub wrote
    mean, std = PRE.camera.mean[0], PRE.camera.std[0]
    return np.rint((batch[:, 0, 0, 0].numpy() * std + mean) * 255).astype(int)


def _encoders(n: int, target: np.ndarray):
    def camera(batch):
        return np.eye(n, dtype=np.float32)[target[_frame_ids(batch)]]

    def lidar(batch):
        return np.eye(n, dtype=np.float32)[_frame_ids(batch)]

    return camera, lidar


def _pose(x, y, z):
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def test_distance_conventions_differ_as_built():
    # Four frames. In the map frame (z up) frames 0/1 are 30 m apart sideways (y) and
    # frames 2/3 30 m apart along x. The pose file's frame (KITTI camera: x lateral,
    # y down, z forward) sees the same places with the lateral offset in x, which the
    # authors' (ty, tz) distance ignores.
    ground = np.stack([_pose(0, 0, 0), _pose(0, 30, 0), _pose(100, 0, 0), _pose(130, 0, 0)])
    file_ = np.stack([_pose(0, 0, 0), _pose(-30, 0, 0), _pose(0, 0, 100), _pose(0, 0, 130)])
    pictures = _Stub(ground, file_, 4)
    target = np.array([1, 0, 3, 2])  # every query retrieves its neighbour
    cam, lid = _encoders(4, target)
    by_ground = evaluate_pictures(cam, lid, PRE, pictures, distance="ground", ks=(1,))
    by_authors = evaluate_pictures(cam, lid, PRE, pictures, distance="authors", ks=(1,))
    # ground plane: every retrieval is 30 m off -> no success at 20 m
    np.testing.assert_allclose(by_ground.retrieval.top1_error, [30, 30, 30, 30])
    assert by_ground.recalls[1] == 0.0
    # authors: the lateral pair (0, 1) looks 0 m apart, the longitudinal pair stays 30 m
    np.testing.assert_allclose(by_authors.retrieval.top1_error, [0, 0, 30, 30])
    assert by_authors.recalls[1] == 0.5
    assert by_ground.chance == pytest.approx(0.25)
    assert by_authors.chance == pytest.approx(0.375)


def test_unposed_frames_are_left_out_and_missing_pose_files_are_explained():
    poses = np.stack([_pose(i * 10.0, 0, 0) for i in range(5)])
    poses[2] = np.nan
    pictures = _Stub(poses, None, 5)
    cam, lid = _encoders(5, np.arange(5))
    result = evaluate_pictures(cam, lid, PRE, pictures, ks=(1, 5))
    np.testing.assert_array_equal(result.query_frames, [0, 1, 3, 4])
    np.testing.assert_array_equal(result.db_frames, [0, 1, 3, 4])
    assert result.recalls == {1: 1.0, 5: 1.0}
    with pytest.raises(ConfigError, match="pose files"):
        evaluate_pictures(cam, lid, PRE, pictures, distance="authors")
