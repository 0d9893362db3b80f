"""The on-disk cache of training pictures: written once, then memory-mapped.

:func:`cache_many` writes a cache folder per source (raw uint8 files plus a JSON index, no
pickle; every missing source rendered by one pool of worker processes), which matters for
sources that are slow to decode or render (synthetic towns) and for bags, which cannot be
read at random. :class:`CachedPictures` reads one back. A folder holds the camera picture of
each frame and its LiDAR pictures at each configured crop heading.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.datasets.base import FrameSource, IndexedSource
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.training.pictures import (
    FORWARD,
    LazyPictures,
    PictureSet,
    frame_pictures,
    heading_slot,
)
from liploc_ros.training.sources import source_file_poses

CACHE_FORMAT = "liploc_ros.training.pictures"
#: 2: synthetic scans draw their noise per ray of the whole scan (other pictures than 1);
#: 3: LiDAR pictures at one or more crop headings per frame (lidar.u8 is N x H x S x S)
CACHE_VERSION = 3


class CachedPictures(PictureSet):
    """Pictures read (memory-mapped) from a cache folder written by :func:`cache_pictures`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DatasetError(f"{meta_path}: not a readable picture cache: {err}") from err
        if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
            raise DatasetError(f"{meta_path}: not a version-{CACHE_VERSION} picture cache")
        self.meta = meta
        self.name = str(meta["name"])
        self.headings = tuple(float(h) for h in meta["headings"])
        self._forward = heading_slot(self.headings, 0.0, str(meta_path))
        count = int(meta["count"])
        cam, lid = int(meta["camera_size"]), int(meta["lidar_size"])
        self._camera = self._map("camera.u8", (count, cam, cam, 3))
        self._lidar = self._map("lidar.u8", (count, len(self.headings), lid, lid))
        self.poses = self._load_poses("poses.npy", count)
        self.file_poses = self._load_poses("file_poses.npy", count)

    def _map(self, filename: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.folder / filename
        expected = int(np.prod(shape))
        if not path.is_file() or path.stat().st_size != expected:
            raise DatasetError(f"{path}: missing or not {expected} bytes; delete the cache folder")
        if expected == 0:
            return np.zeros(shape, np.uint8)
        return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)

    def _load_poses(self, filename: str, count: int) -> np.ndarray | None:
        path = self.folder / filename
        if not path.is_file():
            return None
        poses = np.load(path, allow_pickle=False)
        if poses.shape != (count, 4, 4):
            raise DatasetError(f"{path}: expected ({count}, 4, 4) poses, got {poses.shape}")
        return poses

    def __len__(self) -> int:
        return len(self._camera)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self._camera[index]), np.asarray(self._lidar[index, self._forward])

    def camera(self, index: int) -> np.ndarray:
        return np.asarray(self._camera[index])

    def lidar(self, index: int, heading: float = 0.0) -> np.ndarray:
        slot = heading_slot(self.headings, heading, self.name)
        return np.asarray(self._lidar[index, slot])


def cache_key(
    spec: str, source: FrameSource, pre: PreprocessConfig, headings: Sequence[float] = FORWARD
) -> str:
    """16 hex digits naming what a cache holds: the spec, the preprocessing, the crop
    headings and (for indexed sources) the frame count and stamps, so that changed data
    makes a new entry."""
    digest = hashlib.sha256()
    what = [CACHE_VERSION, spec, to_dict(pre), [float(h) for h in headings]]
    digest.update(json.dumps(what, sort_keys=True).encode())
    if isinstance(source, IndexedSource):
        digest.update(str(len(source)).encode())
        digest.update(np.ascontiguousarray(source.stamps, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "source"


class _RenderItems:
    """(entry, index, camera picture, LiDAR pictures) over the frames of several indexed
    sources in a row, so that one pool of worker processes renders them all (a pool per
    source costs its start-up and its idle tail once per source)."""

    def __init__(
        self, sources: list[IndexedSource], pre: PreprocessConfig, headings: Sequence[float]
    ) -> None:
        self.pictures = [LazyPictures(source, pre, headings) for source in sources]
        self.ends = np.cumsum([len(p) for p in self.pictures])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, item: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        entry = int(np.searchsorted(self.ends, item, side="right"))
        index = item - (int(self.ends[entry - 1]) if entry else 0)
        cam, lid = self.pictures[entry].all_headings(index)
        return entry, index, cam, lid


#: the worker process's items (set once by the pool's initializer)
_WORKER_ITEMS: _RenderItems | None = None


def _start_worker(items: _RenderItems) -> None:
    global _WORKER_ITEMS  # noqa: PLW0603 (one per worker process, set once)
    _WORKER_ITEMS = items


def _render_item(item: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    assert _WORKER_ITEMS is not None  # set by _start_worker
    return _WORKER_ITEMS[item]


def _rendered(
    items: _RenderItems, workers: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Every item, in order; rendered by ``workers`` processes (0: here). The processes are
    started fresh (spawn), not forked: a fork copies whatever threads the calling process
    runs (a ROS executor, a runtime's thread pool), which can crash it; and a plain process
    pool, not torch's DataLoader, whose worker bookkeeping (SIGCHLD handler, shared-memory
    manager) rendering does not need."""
    if workers <= 0:
        yield from (items[i] for i in range(len(items)))
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(items,))
    try:
        yield from pool.map(_render_item, range(len(items)), chunksize=4)
    finally:  # on an error (or Ctrl-C) here, what is not yet rendered is dropped
        pool.shutdown(wait=True, cancel_futures=True)


class _EntryWriter:
    """One cache entry being written into a temporary folder, renamed into place only when
    complete, so that an interrupted run leaves no half entry behind."""

    def __init__(
        self,
        spec: str,
        source: FrameSource,
        pre: PreprocessConfig,
        folder: Path,
        headings: Sequence[float],
    ) -> None:
        self.spec, self.source, self.pre, self.folder = spec, source, pre, folder
        self.headings = [float(h) for h in headings]
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        self.cam_file = (self.tmp / "camera.u8").open("wb")
        self.lid_file = (self.tmp / "lidar.u8").open("wb")
        self.poses: list[np.ndarray] = []
        self.has_pose = False

    def add(self, cam: np.ndarray, lid: np.ndarray, pose: np.ndarray | None) -> None:
        """One frame: its camera picture and its (headings x S x S) LiDAR pictures."""
        if len(lid) != len(self.headings):
            raise DatasetError(f"{self.source.name}: {len(lid)} LiDAR pictures for a frame")
        self.cam_file.write(np.ascontiguousarray(cam, np.uint8).tobytes())
        self.lid_file.write(np.ascontiguousarray(lid, np.uint8).tobytes())
        self.has_pose |= pose is not None
        self.poses.append(np.full((4, 4), np.nan) if pose is None else np.asarray(pose))

    def finish(self) -> CachedPictures:
        self.cam_file.close()
        self.lid_file.close()
        count, name = len(self.poses), self.source.name
        if count == 0:
            raise DatasetError(f"{name}: no frames to cache")
        if self.has_pose:
            poses = np.stack(self.poses).astype(np.float64)
            np.save(self.tmp / "poses.npy", poses, allow_pickle=False)
        file_poses = source_file_poses(self.source)
        if file_poses is not None:
            np.save(self.tmp / "file_poses.npy", file_poses, allow_pickle=False)
        meta: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "name": name,
            "spec": self.spec,
            "count": count,
            "camera_size": self.pre.camera.image_size,
            "lidar_size": self.pre.lidar_image_size,
            "headings": self.headings,
            "preprocess": to_dict(self.pre),
        }
        write_text_atomic(self.tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.replace(self.tmp, self.folder)
        except OSError:
            # Another process finished the same entry first: keep theirs.
            if not (self.folder / "meta.json").is_file():
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)
        return CachedPictures(self.folder)

    def abort(self) -> None:
        self.cam_file.close()
        self.lid_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def cache_folder(
    spec: str,
    source: FrameSource,
    pre: PreprocessConfig,
    root: Path,
    headings: Sequence[float] = FORWARD,
) -> Path:
    """Where the cache entry of ``source`` lives under ``root``."""
    return Path(root) / f"{_safe_name(source.name)}-{cache_key(spec, source, pre, headings)}"


def cache_pictures(
    spec: str,
    source: FrameSource,
    pre: PreprocessConfig,
    cache_root: str | Path,
    *,
    headings: Sequence[float] = FORWARD,
    workers: int = 0,
    progress: bool = True,
) -> CachedPictures:
    """The cache entry of ``source`` under ``cache_root``, written first if missing."""
    return cache_many(
        [(spec, source)], pre, cache_root, headings=headings, workers=workers, progress=progress
    )[0]


def cache_many(
    entries: list[tuple[str, FrameSource]],
    pre: PreprocessConfig,
    cache_root: str | Path,
    *,
    headings: Sequence[float] = FORWARD,
    workers: int = 0,
    progress: bool = True,
) -> list[CachedPictures]:
    """The cache entries of ``(spec, source)`` pairs, in order, with LiDAR pictures cropped
    at ``headings`` (degrees; 0 among them); the missing ones are written, those of indexed
    sources all through one pool of ``workers`` rendering processes, and streaming sources
    (bags) one after another in this process."""
    headings = tuple(float(h) for h in headings)
    heading_slot(headings, 0.0, "picture cache")
    for _, source in entries:
        if isinstance(source, IndexedSource) and len(source) == 0:
            raise DatasetError(f"{source.name}: no frames to cache")
    root = Path(cache_root)
    folders = [cache_folder(spec, source, pre, root, headings) for spec, source in entries]
    missing = [i for i, folder in enumerate(folders) if not (folder / "meta.json").is_file()]
    indexed = [i for i in missing if isinstance(entries[i][1], IndexedSource)]
    for i in missing:
        if i not in indexed:
            _cache_stream(*entries[i], pre, folders[i], headings, progress)
    if indexed:
        indexed_entries = cast("list[tuple[str, IndexedSource]]", [entries[i] for i in indexed])
        _cache_indexed(indexed_entries, [folders[i] for i in indexed], pre,
                       headings, workers=workers, progress=progress)  # fmt: skip
    return [CachedPictures(folder) for folder in folders]


def _cache_stream(
    spec: str,
    source: FrameSource,
    pre: PreprocessConfig,
    folder: Path,
    headings: Sequence[float],
    progress: bool,
) -> None:
    from tqdm import tqdm

    writer = _EntryWriter(spec, source, pre, folder, headings)
    try:
        for frame in tqdm(source.iter_frames(), desc=f"caching {source.name}", unit="frame",
                          disable=not progress):  # fmt: skip
            writer.add(*frame_pictures(frame, pre, source.name, headings), frame.pose)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _cache_indexed(
    entries: list[tuple[str, IndexedSource]],
    folders: list[Path],
    pre: PreprocessConfig,
    headings: Sequence[float],
    *,
    workers: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    sources = [source for _, source in entries]
    items = _RenderItems(sources, pre, headings)
    poses = [source.poses for source in sources]
    what = sources[0].name if len(sources) == 1 else f"{len(sources)} sources"
    bar = tqdm(total=len(items), desc=f"caching {what}", unit="frame", disable=not progress)
    writer: _EntryWriter | None = None
    try:
        for entry, index, cam, lid in _rendered(items, workers):  # entry by entry, in order
            if writer is None:
                spec, entry_source = entries[entry]
                writer = _EntryWriter(spec, entry_source, pre, folders[entry], headings)
            entry_poses = poses[entry]
            writer.add(cam, lid, None if entry_poses is None else entry_poses[index])
            if index + 1 == len(sources[entry]):
                writer.finish()
                writer = None
            bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
