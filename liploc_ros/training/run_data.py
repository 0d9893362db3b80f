"""The data of one training run: picture sets, the split, the cross pairs and the loaders.

Kept apart from the loop (:mod:`liploc_ros.training.train`) because it is the one place
that turns a config's data section into what the epochs iterate over: the training sources
opened (every n-th frame), cached or rendered lazily with their LiDAR pictures at every
configured crop heading, split, paired across traversals when asked, and wrapped in
samplers and loaders; and the evaluation drives opened the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from liploc_ros.datasets.base import FrameSource, IndexedSource
from liploc_ros.datasets.registry import open_source
from liploc_ros.errors import ConfigError
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.training import distributed as ddp
from liploc_ros.training.config import TrainConfig
from liploc_ros.training.cross_pairs import CrossPairs, find_cross_pairs, place_labels
from liploc_ros.training.data import EpochSampler, PairDataset, Split, random_split
from liploc_ros.training.picture_cache import cache_many
from liploc_ros.training.pictures import FORWARD, LazyPictures, PictureSet
from liploc_ros.training.sources import StridedSource, scan_options

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """What :func:`build_run_data` made."""

    sets: list[PictureSet]
    split: Split
    train_set: PairDataset
    train_sampler: EpochSampler
    train_loader: DataLoader
    #: None when the split holds fewer than two validation pairs
    val_loader: DataLoader | None
    #: (map, queries or None) per data.eval entry
    eval_sets: list[tuple[PictureSet, PictureSet | None]]
    #: the training items' partner scans (None: cross-traversal pairs are off)
    cross: CrossPairs | None


def open_picture_sets(
    specs: list[str],
    pre: PreprocessConfig,
    config: TrainConfig,
    info: ddp.DistInfo,
    cache_root: Path,
    *,
    frame_step: int = 1,
    headings: Sequence[float] = FORWARD,
) -> list[PictureSet]:
    """One picture set per spec: cached (built by the first process of each machine while the
    others wait) or rendered lazily, with LiDAR pictures at ``headings``; ``frame_step`` keeps
    every n-th frame of indexed sources."""
    sources: list[FrameSource] = []
    for spec in specs:
        source = open_source(spec, **scan_options(spec, pre, headings))
        if frame_step > 1 and isinstance(source, IndexedSource):
            # (the cache key covers the stride: it hashes the frames' stamps)
            source = StridedSource(source, frame_step)
        sources.append(source)
    use_cache = [config.data.cache or not isinstance(s, IndexedSource) for s in sources]
    to_cache = [(spec, s) for spec, s, c in zip(specs, sources, use_cache, strict=True) if c]
    written: list[PictureSet] = []
    if to_cache:
        if info.local_rank != 0:
            ddp.barrier(info)
        written = list(cache_many(
            to_cache, pre, cache_root, headings=headings, workers=config.data.num_workers,
            progress=config.progress and info.local_rank == 0,
        ))  # fmt: skip
        if info.local_rank == 0:
            ddp.barrier(info)
    cached = iter(written)
    return [
        next(cached) if c else LazyPictures(s, pre, headings)  # type: ignore[arg-type]
        for s, c in zip(sources, use_cache, strict=True)
    ]


def make_loader(
    dataset: PairDataset,
    sampler: EpochSampler,
    config: TrainConfig,
    device: torch.device,
    *,
    drop_last: bool,
) -> DataLoader:
    """A loader of ``config``'s batch size and workers over ``sampler``'s items."""
    workers = config.data.num_workers
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        persistent_workers=workers > 0 and config.data.persistent_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.train.seed),
    )


def training_cross_pairs(
    config: TrainConfig, sets: Sequence[PictureSet], rows: np.ndarray
) -> CrossPairs | None:
    """The partner scans of the training items, or None when ``share`` is 0."""
    cross_cfg = config.data.cross_traversal
    if cross_cfg.share <= 0.0:
        return None
    cross = find_cross_pairs(
        rows,
        [s.poses for s in sets],
        place_labels(list(config.data.train), cross_cfg.groups),
        radius_m=cross_cfg.radius_m,
        headings=cross_cfg.headings,
        tolerance_deg=cross_cfg.heading_tolerance_deg,
    )
    by_heading = {h: int(np.count_nonzero(cross.headings == h)) for h in cross_cfg.headings}
    log.info(
        "cross-traversal pairs: %d of %d training items have a partner scan within %.1f m "
        "(%d candidates by crop heading: %s); %.0f%% of those are swapped in each epoch",
        cross.available, len(rows), cross_cfg.radius_m, len(cross.sets),
        ", ".join(f"{h:g} deg: {n}" for h, n in by_heading.items()), 100 * cross_cfg.share,
    )  # fmt: skip
    if cross.available == 0:
        log.warning("no training item has a cross-traversal partner; check data.cross_traversal")
    return cross


def build_run_data(
    config: TrainConfig,
    pre: PreprocessConfig,
    info: ddp.DistInfo,
    device: torch.device,
    output_dir: Path,
) -> RunData:
    """Everything the epochs and the evaluations read, from ``config.data``."""
    c = config
    if not c.data.train:
        raise ConfigError("data.train is empty: name at least one training source")
    cache_root = Path(c.data.cache_dir) if c.data.cache_dir else output_dir / "cache"
    headings = c.data.cross_traversal.headings
    sets = open_picture_sets(
        list(c.data.train), pre, c, info, cache_root,
        frame_step=c.data.frame_step, headings=headings,
    )  # fmt: skip
    split = random_split([len(s) for s in sets], c.data.val_fraction, c.data.split_seed)
    if len(split.train) < c.train.batch_size * info.world:
        raise ConfigError(
            f"{len(split.train)} training pairs cannot fill one batch of {c.train.batch_size}"
            f" x {info.world} process(es)"
        )
    seed = c.train.seed
    cross = training_cross_pairs(c, sets, split.train)
    train_set = PairDataset(
        sets, split.train, pre, augment=c.data.augment, seed=seed,
        cross=cross, share=c.data.cross_traversal.share,
    )  # fmt: skip
    places = place_labels(list(c.data.train), c.data.cross_traversal.groups)
    train_sampler = EpochSampler(
        len(train_set), batch_size=c.train.batch_size, shuffle=True, seed=seed,
        rank=info.rank, world=info.world, drop_last=True,
        groups=split.train[:, 0], per_batch=c.data.sources_per_batch,
        places=places[split.train[:, 0]],
    )  # fmt: skip
    train_loader = make_loader(train_set, train_sampler, c, device, drop_last=True)
    val_loader = None
    if len(split.val) >= 2:
        val_set = PairDataset(sets, split.val, pre)  # same-instant pairs only
        sampler = EpochSampler(
            len(val_set), batch_size=c.train.batch_size, shuffle=False,
            rank=info.rank, world=info.world, drop_last=False,
        )  # fmt: skip
        val_loader = make_loader(val_set, sampler, c, device, drop_last=False)
    # (all evaluation drives in one call: one rendering pool for them all)
    specs = [spec for e in c.data.eval for spec in (e.map, e.queries) if spec is not None]
    opened = iter(open_picture_sets(specs, pre, c, info, cache_root))
    eval_sets = [
        (next(opened), next(opened) if e.queries is not None else None) for e in c.data.eval
    ]
    log.info(
        "data: %d sources, %d training and %d validation pairs, %d evaluation set(s)",
        len(sets), len(split.train), len(split.val), len(eval_sets),
    )  # fmt: skip
    return RunData(
        sets=sets,
        split=split,
        train_set=train_set,
        train_sampler=train_sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        eval_sets=eval_sets,
        cross=cross,
    )
