"""Paired (camera, LiDAR) training data: the random split, the dataset and the sampler.

Every random choice is a pure function of (seed, epoch, item), not of a global random state
or of which worker process loads an item: the shuffle of epoch e is drawn from
``(seed, e)`` and the holes of item i in epoch e from ``(seed, e, i)``. A resumed run
therefore sees exactly the batches an uninterrupted one would, whatever ``num_workers``.
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
from liploc_ros.training.config import AugmentSection
from liploc_ros.training.pictures import PictureSet, coarse_dropout, color_jitter, to_input

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
    augmentation is reproducible; a plain ``position`` means epoch 0.
    """

    def __init__(
        self,
        sets: Sequence[PictureSet],
        rows: np.ndarray,
        pre: PreprocessConfig,
        *,
        augment: AugmentSection | None = None,
        seed: int = 0,
    ) -> None:
        self.sets = list(sets)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        self.mean, self.std = pre.camera.mean, pre.camera.std
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        position, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        set_index, frame = self.rows[position]
        cam, lid = self.sets[set_index].pair(int(frame))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, _SALT_AUGMENT, int(epoch), int(position)])
            if self.augment.color_jitter > 0:
                cam = color_jitter(cam, rng, self.augment.color_jitter)
            cam = coarse_dropout(cam, rng, self.augment)
            lid = coarse_dropout(lid, rng, self.augment)
        return {
            "camera": torch.from_numpy(to_input(cam, self.mean, self.std)),
            "lidar": torch.from_numpy(to_input(lid, self.mean, self.std)),
            "position": int(position),
        }


class EpochSampler(Sampler):
    """Yields ``(position, epoch)``; shuffled per epoch from ``(seed, epoch)`` and sharded over
    ``world`` processes (rank r takes every world-th item).

    ``drop_last`` trims the epoch to whole global batches (training: every process must
    contribute a full batch to the gathered loss); otherwise the epoch is padded by repeating
    items so that every process gets as many (validation: equal batch shapes to gather).
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
    ) -> None:
        if size < 1:
            raise ConfigError("a sampler over an empty dataset")
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.rank, self.world, self.drop_last = seed, rank, world, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _per_rank(self) -> int:
        if self.drop_last:
            return (self.size // (self.batch_size * self.world)) * self.batch_size
        return math.ceil(self.size / self.world)

    def __len__(self) -> int:
        return self._per_rank()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            gen = np.random.default_rng([self.seed, _SALT_SHUFFLE, self.epoch])
            order = gen.permutation(self.size)
        else:
            order = np.arange(self.size)
        need = self._per_rank() * self.world
        if need > len(order):
            order = np.resize(order, need)
        order = order[:need]
        for position in order[self.rank :: self.world]:
            yield int(position), self.epoch
