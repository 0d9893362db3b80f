"""Paired (camera, LiDAR) training data: the random split, the dataset and the sampler.

Every random choice is a pure function of (seed, epoch, item), not of a global random state
or of which worker process loads an item: the shuffle of epoch e is drawn from
``(seed, e)``, the holes of item i in epoch e from ``(seed, e, i)``, and whether item i is
a cross-traversal pair in epoch e (:mod:`liploc_ros.training.cross_pairs`) from another
stream of ``(seed, e, i)``. A resumed run therefore sees exactly the batches an
uninterrupted one would, whatever ``num_workers``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from liploc_ros.errors import ConfigError
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.tensors import picture_input
from liploc_ros.training.augment import coarse_dropout, color_jitter
from liploc_ros.training.config import AugmentSection
from liploc_ros.training.cross_pairs import CrossPairs, pick_partner
from liploc_ros.training.pictures import PictureSet

#: salts that keep the shuffle and the augmentation streams apart
_SALT_SHUFFLE = 0x5A17
_SALT_AUGMENT = 0xA064


@dataclass(frozen=True)
class Split:
    """Rows (set index, frame index) of the training and validation pairs."""

    train: np.ndarray
    val: np.ndarray


def random_split(counts: Sequence[int], val_fraction: float, seed: int) -> Split:
    """The authors' split: ``val_fraction`` of all frames (of every source together) drawn
    at random with ``seed`` for validation, the rest for training; both in frame order."""
    rows = np.concatenate(
        [np.stack([np.full(n, s), np.arange(n)], axis=1) for s, n in enumerate(counts)]
        or [np.zeros((0, 2), np.int64)]
    ).astype(np.int64)
    n_val = int(len(rows) * val_fraction)
    order = np.random.default_rng(seed).permutation(len(rows))
    val = np.sort(order[:n_val])
    train = np.sort(order[n_val:])
    return Split(train=rows[train], val=rows[val])


class PairDataset(Dataset):
    """Pairs of normalised inputs, augmented when ``augment`` is given.

    Items are asked for as ``(position, epoch)`` (see :class:`EpochSampler`) so that the
    augmentation is reproducible; a plain ``position`` means epoch 0. With ``cross`` (one
    entry per row) and ``share`` > 0, an item that has partner scans trains, in a share of
    the epochs, its camera with one of them instead of its own scan.
    """

    def __init__(
        self,
        sets: Sequence[PictureSet],
        rows: np.ndarray,
        pre: PreprocessConfig,
        *,
        augment: AugmentSection | None = None,
        seed: int = 0,
        cross: CrossPairs | None = None,
        share: float = 0.0,
    ) -> None:
        self.sets = list(sets)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        self.mean, self.std = pre.camera.mean, pre.camera.std
        self.augment = augment
        self.seed = seed
        if cross is not None and len(cross) != len(self.rows):
            raise ConfigError(f"cross pairs for {len(cross)} items, the dataset has {len(rows)}")
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"cross-pair share must be within [0, 1], got {share}")
        self.cross = cross
        self.share = share if cross is not None else 0.0

    def __len__(self) -> int:
        return len(self.rows)

    def partner(self, position: int, epoch: int) -> tuple[int, int, float] | None:
        """(set, frame, crop heading) of the scan item ``position`` trains with in
        ``epoch`` instead of its own, or None for its own (a same-instant pair)."""
        if self.cross is None or self.share <= 0.0:
            return None
        pick = pick_partner(self.cross, position, seed=self.seed, epoch=epoch, share=self.share)
        if pick < 0:
            return None
        c = self.cross
        return int(c.sets[pick]), int(c.frames[pick]), float(c.headings[pick])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        position, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        set_index, frame = self.rows[position]
        cam, lid = self.sets[set_index].pair(int(frame))
        partner = self.partner(int(position), int(epoch))
        if partner is not None:
            other, other_frame, heading = partner
            lid = self.sets[other].lidar(other_frame, heading)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, _SALT_AUGMENT, int(epoch), int(position)])
            if self.augment.color_jitter > 0:
                cam = color_jitter(cam, rng, self.augment.color_jitter)
            cam = coarse_dropout(cam, rng, self.augment)
            lid = coarse_dropout(lid, rng, self.augment)
        return {
            "camera": torch.from_numpy(picture_input(cam, self.mean, self.std)),
            "lidar": torch.from_numpy(picture_input(lid, self.mean, self.std)),
            "position": int(position),
        }


class EpochSampler(Sampler):
    """Yields ``(position, epoch)``; shuffled per epoch from ``(seed, epoch)`` and sharded over
    ``world`` processes.

    ``drop_last`` trims the epoch to whole global batches (training: every process must
    contribute a full batch to the gathered loss); otherwise the epoch is padded by repeating
    items so that every process gets as many (validation: equal batch shapes to gather).

    With ``groups`` (one label per item, e.g. its source) and ``per_batch`` > 0, each batch
    holds ``batch_size / per_batch`` items from each of ``per_batch`` groups, so that its
    negatives come from the same drive (hard negatives) instead of from other drives.
    ``places`` (one label per item, constant within a group) says which groups are drives
    of one place: a batch never takes chunks of two of them, whose items would be the same
    spots seen twice, i.e. false negatives of the contrastive loss. Random batches are left
    as drawn: there two items of one spot are rare (the demo recipe, two drives per town:
    one pair within 5 m in about 6% of its batches of 32).
    """

    def __init__(
        self,
        size: int,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = True,
        groups: np.ndarray | None = None,
        per_batch: int = 0,
        places: np.ndarray | None = None,
    ) -> None:
        if size < 1:
            raise ConfigError("a sampler over an empty dataset")
        if per_batch > 0:
            if groups is None or len(groups) != size:
                raise ConfigError("grouped batches need one group label per item")
            if batch_size % per_batch:
                raise ConfigError(
                    f"batch_size {batch_size} is not a multiple of sources_per_batch {per_batch}"
                )
            if not (shuffle and drop_last):
                raise ConfigError("grouped batches are for shuffled training epochs")
        self.place_of: dict[int, int] = {}
        if per_batch > 0 and places is not None:
            self.place_of = _place_of_groups(np.asarray(groups), np.asarray(places))
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.rank, self.world, self.drop_last = seed, rank, world, drop_last
        self.groups = None if groups is None else np.asarray(groups)
        self.per_batch = per_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, _SALT_SHUFFLE, self.epoch])

    def _per_rank(self) -> int:
        if self.per_batch > 0:
            # how many chunks find partners depends on the draw: count this epoch's
            return len(self._grouped_order(self._generator())) // self.world
        if self.drop_last:
            return (self.size // (self.batch_size * self.world)) * self.batch_size
        return math.ceil(self.size / self.world)

    def __len__(self) -> int:
        return self._per_rank()

    def _grouped_order(self, gen: np.random.Generator) -> np.ndarray:
        """Batches of ``per_batch`` groups x ``batch_size / per_batch`` items, in a random
        order; leftovers of groups too small to contribute are dropped this epoch."""
        groups = self.groups
        assert groups is not None  # per_batch > 0 needs them (checked in __init__)
        take = self.batch_size // self.per_batch
        pools = [gen.permutation(np.flatnonzero(groups == g)) for g in np.unique(groups)]
        chunks = [
            pool[i : i + take] for pool in pools for i in range(0, len(pool) - take + 1, take)
        ]
        owner = [g for g, pool in enumerate(pools) for _ in range(len(pool) // take)]
        # chunks are pooled by place (by group when no places are given): one per batch
        place = [self.place_of.get(int(g), int(g)) for g in np.unique(groups)]
        by_group: dict[int, list[np.ndarray]] = {}
        sources: dict[int, set[int]] = {}
        for g, chunk in zip(owner, chunks, strict=True):
            by_group.setdefault(place[g], []).append(chunk)
            sources.setdefault(place[g], set()).add(g)
        for key, pooled in by_group.items():
            if len(sources[key]) > 1:  # mix the drives of one place
                by_group[key] = [pooled[i] for i in gen.permutation(len(pooled))]
        batches = []
        while len(by_group) >= self.per_batch:
            # the groups with the most chunks left go first (random among equals), so that
            # as few chunks as possible remain unpaired at the end
            keys = list(by_group)
            weights = np.array([len(by_group[k]) for k in keys], dtype=np.float64)
            picked = gen.choice(
                len(keys), size=self.per_batch, replace=False, p=weights / weights.sum()
            )
            batch = [by_group[keys[i]].pop() for i in picked]
            for i in picked:
                if not by_group[keys[i]]:
                    del by_group[keys[i]]
            batches.append(np.concatenate(batch))
        if not batches:
            raise ConfigError(
                f"cannot form a batch from {self.per_batch} sources of {take} items each"
            )
        batches = [batches[i] for i in gen.permutation(len(batches))]
        usable = len(batches) - len(batches) % self.world
        # batch b goes to rank b % world: interleave so that rank r's slice r::world of the
        # item order is exactly its batches
        mine = batches[:usable]
        order = np.stack([np.concatenate(mine[r :: self.world]) for r in range(self.world)], 1)
        return order.reshape(-1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = self._generator()
        if self.per_batch > 0:
            order = self._grouped_order(gen)
            for position in order[self.rank :: self.world]:
                yield int(position), self.epoch
            return
        order = gen.permutation(self.size) if self.shuffle else np.arange(self.size)
        need = self._per_rank() * self.world
        if need > len(order):
            order = np.resize(order, need)
        order = order[:need]
        for position in order[self.rank :: self.world]:
            yield int(position), self.epoch


def _place_of_groups(groups: np.ndarray, places: np.ndarray) -> dict[int, int]:
    """The place label of each group label; a group spread over two places is an error."""
    if len(places) != len(groups):
        raise ConfigError("grouped batches need one place label per item")
    out: dict[int, int] = {}
    for g, place in zip(groups.tolist(), places.tolist(), strict=True):
        if out.setdefault(int(g), int(place)) != int(place):
            raise ConfigError(f"the items of group {g} lie in two places")
    return out
