"""Training data: the 8-bit pictures, the augmentation, the split, the sampler, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.preprocess import (
    CameraConfig,
    PreprocessConfig,
    camera_input,
    camera_picture,
    lidar_input,
    lidar_picture,
    picture_input,
)
from liploc_ros.training.augment import coarse_dropout, color_jitter
from liploc_ros.training.config import AugmentSection, load_train_config
from liploc_ros.training.cross_pairs import CrossPairs
from liploc_ros.training.data import EpochSampler, PairDataset, random_split
from liploc_ros.training.picture_cache import CachedPictures, cache_many, cache_pictures
from liploc_ros.training.pictures import LazyPictures

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
    np.testing.assert_array_equal(picture_input(cam, mean, std), camera_input(frame.image, PRE))
    np.testing.assert_array_equal(picture_input(lid, mean, std), lidar_input(frame.points, PRE))


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


def test_cache_round_trips_the_extra_headings(drive, tmp_path):
    headings = (0.0, 180.0)
    cached = cache_pictures(
        "synthetic:3:0:6", drive, PRE, tmp_path, headings=headings, progress=False
    )
    assert cached.headings == headings
    assert cached.meta["headings"] == [0.0, 180.0]
    lazy = LazyPictures(drive, PRE, headings)
    for i in (1, 4):
        points = drive.frame(i).points
        rear = lidar_picture(points, PRE, heading_deg=180.0)
        np.testing.assert_array_equal(cached.lidar(i, 180.0), rear)
        np.testing.assert_array_equal(lazy.lidar(i, 180.0), rear)
        np.testing.assert_array_equal(cached.lidar(i), lidar_picture(points, PRE))
        np.testing.assert_array_equal(cached.pair(i)[1], cached.lidar(i, 0.0))
        assert not np.array_equal(rear, cached.lidar(i))  # a street looks otherwise behind
    with pytest.raises(DatasetError, match="90"):
        cached.lidar(0, 90.0)
    # the forward-only entry of the same source is another folder, with its own pictures
    forward = cache_pictures("synthetic:3:0:6", drive, PRE, tmp_path, progress=False)
    assert forward.folder != cached.folder
    assert forward.headings == (0.0,)
    np.testing.assert_array_equal(forward.lidar(4), cached.lidar(4))
    with pytest.raises(DatasetError, match="180"):
        forward.lidar(4, 180.0)
    with pytest.raises(DatasetError, match="0"):
        cache_pictures("synthetic:3:0:6", drive, PRE, tmp_path, headings=(180.0,))


def _cross_for(rows: np.ndarray, partner_frame: int) -> CrossPairs:
    # every item of set 0 has one partner: frame ``partner_frame`` of set 1, rear crop
    has = rows[:, 0] == 0
    m = int(has.sum())
    return CrossPairs(
        offsets=np.concatenate([[0], np.cumsum(has)]).astype(np.int64),
        sets=np.ones(m, np.int64),
        frames=np.full(m, partner_frame, np.int64),
        headings=np.full(m, 180.0),
        distances=np.zeros(m),
    )


def test_pair_dataset_swaps_in_partner_scans_by_the_share(drive, tmp_path):
    other = make_drive(3, 4, 6)
    headings = (0.0, 180.0)
    sets = cache_many([("synthetic:3:0:6", drive), ("synthetic:3:4:6", other)], PRE, tmp_path,
                      headings=headings, progress=False)  # fmt: skip
    rows = np.array([[0, 0], [0, 2], [0, 5], [1, 1]])
    cross = _cross_for(rows, partner_frame=3)
    mean, std = PRE.camera.mean, PRE.camera.std
    rear = picture_input(sets[1].lidar(3, 180.0), mean, std)
    always = PairDataset(sets, rows, PRE, seed=1, cross=cross, share=1.0)
    for position in range(3):
        item = always[(position, 0)]
        np.testing.assert_array_equal(item["lidar"], rear)
        own_camera = picture_input(sets[0].camera(int(rows[position, 1])), mean, std)
        np.testing.assert_array_equal(item["camera"], own_camera)
    own = PairDataset(sets, rows, PRE, seed=1)[(3, 0)]  # set 1's item has no partner
    np.testing.assert_array_equal(always[(3, 0)]["lidar"], own["lidar"])
    # share 0 (or no cross pairs) is the dataset of before, augmentation draws included
    aug = AugmentSection(p=1.0, color_jitter=0.2)
    before = PairDataset(sets, rows, PRE, augment=aug, seed=1)
    off = PairDataset(sets, rows, PRE, augment=aug, seed=1, cross=cross, share=0.0)
    half = PairDataset(sets, rows, PRE, augment=aug, seed=1, cross=cross, share=0.5)
    for key in [(p, e) for p in range(4) for e in range(3)]:
        for name in ("camera", "lidar"):
            np.testing.assert_array_equal(off[key][name], before[key][name])
        np.testing.assert_array_equal(half[key]["camera"], before[key]["camera"])
        assert off.partner(*key) is None
    swapped = [half.partner(p, e) for p in range(3) for e in range(40)]
    assert 0.3 < np.mean([s is not None for s in swapped]) < 0.7
    assert {s for s in swapped if s is not None} == {(1, 3, 180.0)}
    assert [half.partner(p, e) for p in range(3) for e in range(40)] == swapped
    with pytest.raises(ConfigError, match="cross pairs for"):
        PairDataset(sets, rows[:2], PRE, cross=cross, share=0.5)


def test_grouped_batches_never_take_two_drives_of_one_place():
    groups = np.repeat(np.arange(6), 16)  # six drives of 16 items
    places = np.array([0, 0, 1, 1, 2, 3])[groups]  # drives 0, 1 and 2, 3: one place each
    opts = {"batch_size": 8, "shuffle": True, "seed": 4, "groups": groups, "per_batch": 2}
    sampler = EpochSampler(len(groups), places=places, **opts)
    seen_pairs = set()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        items = [p for p, _ in sampler]
        assert len(items) == len(sampler)
        for start in range(0, len(items), 8):
            batch = np.array(items[start : start + 8])
            assert len(set(places[batch].tolist())) == 2  # two places, never one twice
            seen_pairs.add(tuple(sorted(set(groups[batch].tolist()))))
    assert any(0 in p or 1 in p for p in seen_pairs)
    assert not any({0, 1} <= set(p) or {2, 3} <= set(p) for p in seen_pairs)
    # without places (or with one place per drive) the order is the one of before
    plain = EpochSampler(len(groups), **opts)
    own = EpochSampler(len(groups), places=groups * 10, **opts)
    for epoch in range(3):
        plain.set_epoch(epoch)
        own.set_epoch(epoch)
        assert list(plain) == list(own)
    with pytest.raises(ConfigError, match="two places"):
        EpochSampler(len(groups), places=np.arange(len(groups)), **opts)


def test_training_inputs_are_the_serving_inputs_bit_for_bit(drive, tmp_path):
    # one recipe: what a model trains on (cached 8-bit pictures, normalised by the dataset)
    # is exactly what the Embedder feeds it for the same frame, both modalities, any crop
    headings = (0.0, 180.0)
    cached = cache_pictures(
        "synthetic:3:0:6", drive, PRE, tmp_path, headings=headings, progress=False
    )
    rows = np.array([[0, 1], [0, 3]])
    data = PairDataset([cached], rows, PRE)
    for position, (_, index) in enumerate(rows):
        frame = drive.frame(int(index))
        item = data[position]
        assert item["camera"].dtype == torch.float32
        np.testing.assert_array_equal(item["camera"].numpy(), camera_input(frame.image, PRE))
        np.testing.assert_array_equal(item["lidar"].numpy(), lidar_input(frame.points, PRE))
        rear = picture_input(cached.lidar(int(index), 180.0), PRE.camera.mean, PRE.camera.std)
        np.testing.assert_array_equal(rear, lidar_input(frame.points, PRE, heading_deg=180.0))
    # the serving path given the picture in another channel order resizes the same RGB
    image = drive.frame(2).image
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    np.testing.assert_array_equal(camera_input(bgr, PRE, "bgr"), camera_input(image, PRE))
