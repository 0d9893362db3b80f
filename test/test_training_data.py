"""Training data: the 8-bit pictures, the augmentation, the split, the sampler, the cache."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.preprocess import CameraConfig, PreprocessConfig, camera_input, lidar_input
from liploc_ros.training.config import AugmentSection, load_train_config
from liploc_ros.training.data import EpochSampler, PairDataset, random_split
from liploc_ros.training.pictures import (
    CachedPictures,
    LazyPictures,
    cache_many,
    cache_pictures,
    camera_picture,
    coarse_dropout,
    color_jitter,
    lidar_picture,
    to_input,
)

PRE = PreprocessConfig(camera=CameraConfig(image_size=40), lidar_image_size=24)


@pytest.fixture(scope="module")
def drive():
    return make_drive(3, 0, 6)


def test_pictures_normalised_equal_the_inference_inputs(drive):
    # Training normalises the resized 8-bit pictures itself; it must give exactly what the
    # Embedder's preprocessing gives, or a trained model would see other inputs at run time.
    frame = drive.frame(2)
    cam, lid = camera_picture(frame.image, PRE), lidar_picture(frame.points, PRE)
    assert cam.shape == (40, 40, 3)
    assert cam.dtype == np.uint8
    assert lid.shape == (24, 24)
    assert lid.dtype == np.uint8
    mean, std = PRE.camera.mean, PRE.camera.std
    np.testing.assert_array_equal(to_input(cam, mean, std), camera_input(frame.image, PRE))
    np.testing.assert_array_equal(to_input(lid, mean, std), lidar_input(frame.points, PRE))


def test_coarse_dropout_scales_holes_with_the_input_size():
    cfg = AugmentSection(p=1.0, min_holes=1, max_holes=1, min_size=50, max_size=100)
    for size in (224, 56):
        rng = np.random.default_rng(0)
        sides = []
        for _ in range(50):
            out = coarse_dropout(np.full((size, size, 3), 200, np.uint8), rng, cfg)
            holes = (out == 0).all(axis=2)
            rows, cols = np.flatnonzero(holes.any(axis=1)), np.flatnonzero(holes.any(axis=0))
            sides += [len(rows), len(cols)]
            assert holes.sum() == len(rows) * len(cols)  # one filled rectangle
        lo, hi = 50 * size / 224, 100 * size / 224
        assert lo - 1 <= min(sides)
        assert max(sides) <= hi + 1


def test_coarse_dropout_probability_and_input_untouched():
    cfg = AugmentSection(p=0.9)
    rng = np.random.default_rng(1)
    picture = np.full((64, 64), 7, np.uint8)
    changed = sum((coarse_dropout(picture, rng, cfg) == 0).any() for _ in range(400))
    assert 0.84 * 400 < changed < 0.96 * 400
    assert (picture == 7).all()
    none = AugmentSection(p=0.0)
    assert (coarse_dropout(picture, rng, none) == 7).all()


def test_color_jitter_scales_channels_within_the_strength():
    picture = np.full((8, 8, 3), 100, np.uint8)
    rng = np.random.default_rng(2)
    gains = []
    for _ in range(200):
        out = color_jitter(picture, rng, 0.3)
        assert out.dtype == np.uint8
        assert (out == out[0, 0]).all()
        gains.append(out[0, 0] / 100.0)
    gains = np.array(gains)
    assert gains.min() >= 0.7 * 0.85 - 0.01
    assert gains.max() <= 1.3 * 1.15 + 0.01
    assert gains.std() > 0.05  # it does vary
    assert (color_jitter(picture, rng, 0.0) == 100).all()


def test_random_split_is_seeded_disjoint_and_80_20():
    split = random_split([30, 70], 0.2, 42)
    assert len(split.val) == 20
    assert len(split.train) == 80
    rows = {tuple(r) for r in np.concatenate([split.train, split.val])}
    assert len(rows) == 100
    assert {tuple(r) for r in split.train}.isdisjoint({tuple(r) for r in split.val})
    again = random_split([30, 70], 0.2, 42)
    np.testing.assert_array_equal(split.val, again.val)
    other = random_split([30, 70], 0.2, 7)
    assert not np.array_equal(split.val, other.val)


def test_sampler_shards_reshuffles_and_keeps_whole_batches():
    shards = [
        list(EpochSampler(23, batch_size=4, shuffle=True, seed=5, rank=r, world=2))
        for r in range(2)
    ]
    assert [len(s) for s in shards] == [8, 8]  # 23 // (4 * 2) = 2 global batches
    positions = [p for s in shards for p, _ in s]
    assert len(set(positions)) == 16
    sampler = EpochSampler(23, batch_size=4, shuffle=True, seed=5)
    first = [p for p, _ in sampler]
    sampler.set_epoch(1)
    second = list(sampler)
    assert [p for p, _ in second] != first
    assert {e for _, e in second} == {1}
    padded = EpochSampler(5, batch_size=4, shuffle=False, world=2, rank=1, drop_last=False)
    assert len(list(padded)) == 3


def test_grouped_sampler_fills_each_batch_from_few_sources_and_shards():
    groups = np.repeat(np.arange(5), [13, 9, 20, 4, 11])  # 57 items, one source is small
    for world in (1, 2):
        shards = [
            EpochSampler(
                len(groups),
                batch_size=8,
                shuffle=True,
                seed=3,
                rank=r,
                world=world,
                groups=groups,
                per_batch=2,
            )
            for r in range(world)
        ]
        items = [[p for p, _ in s] for s in shards]
        assert [len(i) for i in items] == [len(s) for s in shards]  # __len__ is exact
        assert len({len(i) for i in items}) == 1  # every rank takes as many batches
        everything = [p for i in items for p in i]
        assert len(set(everything)) == len(everything)  # nothing drawn twice
        for rank_items in items:
            assert len(rank_items) % 8 == 0
            for start in range(0, len(rank_items), 8):
                batch = groups[rank_items[start : start + 8]]
                sources, counts = np.unique(batch, return_counts=True)
                assert len(sources) == 2
                assert counts.tolist() == [4, 4]
    # 57 items make 13 chunks of 4 (the 4-item source: one): at most 6 batches of 2 chunks
    assert (
        5
        <= len(list(EpochSampler(57, batch_size=8, shuffle=True, groups=groups, per_batch=2))) // 8
        <= 6
    )
    with pytest.raises(ConfigError, match="multiple"):
        EpochSampler(57, batch_size=8, shuffle=True, groups=groups, per_batch=3)
    with pytest.raises(ConfigError, match="one group label"):
        EpochSampler(57, batch_size=8, shuffle=True, groups=groups[:5], per_batch=2)


def test_pair_dataset_augmentation_depends_on_epoch_and_item_only(drive):
    sets = [LazyPictures(drive, PRE)]
    rows = np.array([[0, 1], [0, 4]])
    aug = AugmentSection(p=1.0)
    a = PairDataset(sets, rows, PRE, augment=aug, seed=3)
    b = PairDataset(sets, rows, PRE, augment=aug, seed=3)
    np.testing.assert_array_equal(a[(1, 2)]["camera"], b[(1, 2)]["camera"])
    assert not np.array_equal(a[(1, 2)]["camera"], a[(1, 3)]["camera"])
    plain = PairDataset(sets, rows, PRE)[1]
    np.testing.assert_array_equal(plain["lidar"], lidar_input(drive.frame(4).points, PRE))


def test_cache_round_trip_and_reuse(drive, tmp_path):
    cached = cache_pictures("synthetic:3:0:6", drive, PRE, tmp_path, progress=False)
    assert isinstance(cached, CachedPictures)
    assert len(cached) == 6
    lazy = LazyPictures(drive, PRE)
    for i in (0, 5):
        for got, want in zip(cached.pair(i), lazy.pair(i), strict=True):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cached.poses, drive.poses)
    again = cache_pictures("synthetic:3:0:6", drive, PRE, tmp_path, progress=False)
    assert again.folder == cached.folder
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1
    (cached.folder / "lidar.u8").write_bytes(b"short")
    with pytest.raises(DatasetError, match=r"lidar\.u8"):
        CachedPictures(cached.folder)


def test_cache_many_renders_every_source_in_one_pool_in_order(drive, tmp_path):
    other = make_drive(4, 1, 5)
    first = cache_pictures("synthetic:3:0:6", drive, PRE, tmp_path, progress=False)
    stamp = (first.folder / "camera.u8").stat().st_mtime_ns
    entries = [("synthetic:4:1:5", other), ("synthetic:3:0:6", drive)]
    got = cache_many(entries, PRE, tmp_path, workers=2, progress=False)
    assert [len(g) for g in got] == [5, 6]
    assert got[1].folder == first.folder  # already there: reused, not rewritten
    assert (first.folder / "camera.u8").stat().st_mtime_ns == stamp
    lazy = LazyPictures(other, PRE)
    for i in range(5):
        for a, b in zip(got[0].pair(i), lazy.pair(i), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0].poses, other.poses)


def test_cache_many_keeps_finished_entries_and_no_half_one(drive, tmp_path):
    broken = make_drive(4, 1, 5)
    readable = broken.frame

    def frame(index, **kw):
        if index == 3:
            raise DatasetError(f"frame {index} is unreadable")
        return readable(index, **kw)

    broken.frame = frame
    entries = [("synthetic:3:0:6", drive), ("synthetic:4:1:5", broken)]
    with pytest.raises(DatasetError, match="frame 3 is unreadable"):
        cache_many(entries, PRE, tmp_path, workers=0, progress=False)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1  # the first entry, whole; nothing of the second
    assert not left[0].startswith(".")
    assert len(CachedPictures(tmp_path / left[0])) == 6


def test_config_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 4\n")
    cfg = load_train_config(path, ["train.batch_size=8", "data.train=[synthetic:1:0:10]"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (4, 8)
    assert cfg.data.train == ("synthetic:1:0:10",)
    # the authors' recipe is the default
    assert (cfg.optim.lr_camera, cfg.optim.lr_lidar, cfg.optim.lr_head) == (1e-5, 1e-4, 1e-3)
    assert (cfg.data.val_fraction, cfg.data.split_seed, cfg.loss.name) == (0.2, 42, "authors")
    with pytest.raises(ConfigError, match="epochz"):
        load_train_config(path, ["train.epochz=3"])
    path.write_text("optim:\n  lr_head: fast\n")
    with pytest.raises(ConfigError, match="lr_head"):
        load_train_config(path)
