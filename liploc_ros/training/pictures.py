"""Frames -> the 8-bit square pictures the encoders see, kept in memory or on disk.

Training works on the resized uint8 pictures (camera RGB, LiDAR range gray) rather than on
the final float tensors, for three reasons: the coarse-dropout augmentation is defined on
them (after the resize, filled with 8-bit 0), they are 4x (camera) to 12x (LiDAR) smaller
than float32 tensors, and normalising them afterwards gives exactly what
:func:`liploc_ros.preprocess.camera_input` / :func:`lidar_input` give (same resize, same
arithmetic), so a model trained here sees the inputs the Embedder will feed it.

A :class:`PictureSet` is a drive's pairs with their poses; :class:`LazyPictures` renders
them on demand from an indexed source, :class:`CachedPictures` reads them from a cache
folder written once by :func:`cache_many` (raw uint8 files plus a JSON index, no pickle;
every missing source rendered by one pool of worker processes), which matters for sources
that are slow to decode or render (synthetic towns) and for bags, which cannot be read at
random.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.datasets.base import Frame, FrameSource, IndexedSource
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.preprocess.camera import to_rgb
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.range_image import project_range, range_to_uint8
from liploc_ros.training.config import AugmentSection

CACHE_FORMAT = "liploc_ros.training.pictures"
#: 2: synthetic scans draw their noise per ray of the whole scan (other pictures than 1)
CACHE_VERSION = 2


# -- pictures and inputs ------------------------------------------------------------------


def camera_picture(image: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """An RGB frame resized as the camera encoder sees it: S x S x 3 uint8."""
    size = pre.camera.image_size
    return cv2.resize(to_rgb(image), (size, size), interpolation=cv2.INTER_LINEAR)


def lidar_picture(points: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """A scan's cropped 8-bit range image resized as the LiDAR encoder sees it: S x S uint8
    (one gray channel; the encoder's three channels are copies of it)."""
    size = pre.lidar_image_size
    gray = range_to_uint8(project_range(points, pre.lidar), pre.lidar)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)


def to_input(picture: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """A resized uint8 picture (S x S x 3, or S x S gray) -> 3 x S x S float32, normalised with
    the same arithmetic as :func:`liploc_ros.preprocess.normalize_picture`."""
    std_arr = np.asarray(std, dtype=np.float32)
    scale = (1.0 / (255.0 * std_arr))[:, None, None]
    offset = (np.asarray(mean, dtype=np.float32) / std_arr)[:, None, None]
    if picture.ndim == 2:
        chw = np.broadcast_to(picture[None], (3, *picture.shape))
    else:
        chw = picture.transpose(2, 0, 1)
    out = chw.astype(np.float32) * scale
    out -= offset
    return out


def coarse_dropout(
    picture: np.ndarray, rng: np.random.Generator, cfg: AugmentSection
) -> np.ndarray:
    """The authors' training augmentation: with probability ``p``, 1..max_holes rectangles
    (sides ``min_size``..``max_size`` px at ``reference_size``, scaled with the picture) set
    to ``fill``. Returns a new array; the input is left as it is."""
    out = np.array(picture, copy=True)
    if cfg.max_holes == 0 or rng.random() >= cfg.p:
        return out
    height, width = out.shape[:2]
    holes = int(rng.integers(cfg.min_holes, cfg.max_holes + 1))
    for _ in range(holes):
        h = _scaled_side(rng, cfg, height)
        w = _scaled_side(rng, cfg, width)
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        out[y : y + h, x : x + w] = cfg.fill
    return out


def color_jitter(picture: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """An RGB picture under other light: one brightness factor in [1 - s, 1 + s] times one
    gain per channel in [1 - s/2, 1 + s/2], clipped to 8 bits (a new array)."""
    if strength <= 0:
        return np.array(picture, copy=True)
    gain = rng.uniform(1 - strength, 1 + strength) * rng.uniform(
        1 - strength / 2, 1 + strength / 2, size=3
    )
    out = picture.astype(np.float32) * gain.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _scaled_side(rng: np.random.Generator, cfg: AugmentSection, side: int) -> int:
    scale = side / cfg.reference_size
    lo = max(1, round(cfg.min_size * scale))
    hi = max(lo, round(cfg.max_size * scale))
    return min(side, int(rng.integers(lo, hi + 1)))


def frame_pictures(
    frame: Frame, pre: PreprocessConfig, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Both pictures of a frame; a frame missing a modality is an error naming ``where``."""
    if frame.image is None or frame.points is None:
        missing = "image" if frame.image is None else "scan"
        raise DatasetError(f"{where}: frame {frame.index} has no {missing}; training needs both")
    return camera_picture(frame.image, pre), lidar_picture(frame.points, pre)


# -- sets of pictures ---------------------------------------------------------------------


def source_file_poses(source: FrameSource) -> np.ndarray | None:
    """The poses as the source's pose file holds them, where the authors' evaluation reads
    its distances from (KITTI: camera 0 in the first camera frame; KITTI-360: poses.txt
    rows); None for sources without such a file."""
    for name in ("file_poses", "camera_poses", "imu_poses"):
        poses = getattr(source, name, None)
        if poses is not None:
            return np.asarray(poses, dtype=np.float64)
    return None


class StridedSource(IndexedSource):
    """Every ``step``-th frame of an indexed source, renumbered from 0 (fewer, more distinct
    frames: neighbouring frames of a 10 Hz drive are nearly the same picture)."""

    def __init__(self, source: IndexedSource, step: int) -> None:
        if step < 1:
            raise DatasetError(f"frame step must be >= 1, got {step}")
        self.source, self.step = source, step
        self.name = f"{source.name}/every{step}"
        self.calibration = source.calibration
        self._index = np.arange(0, len(source), step)
        file_poses = source_file_poses(source)
        self.file_poses = None if file_poses is None else file_poses[self._index]

    def __len__(self) -> int:
        return len(self._index)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        original = self.source.frame(int(self._index[index]), image=image, points=points)
        return Frame(
            index=index,
            stamp=original.stamp,
            image=original.image,
            points=original.points,
            pose=original.pose,
            meta={**original.meta, "source_index": original.index},
        )

    @property
    def stamps(self) -> np.ndarray:
        return np.asarray(self.source.stamps)[self._index]

    @property
    def poses(self) -> np.ndarray | None:
        poses = self.source.poses
        return None if poses is None else np.asarray(poses)[self._index]


class PictureSet:
    """A drive's (camera, LiDAR) picture pairs with ``T_map_lidar`` poses (NaN: unknown)."""

    name: str
    #: (N, 4, 4) T_map_lidar, NaN where a frame has no pose; None: no poses at all
    poses: np.ndarray | None
    #: (N, 4, 4) the pose file's own poses (see :func:`source_file_poses`) or None
    file_poses: np.ndarray | None

    def __len__(self) -> int:
        raise NotImplementedError

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(S x S x 3 camera, S x S LiDAR) uint8 pictures of frame ``index``."""
        raise NotImplementedError

    def camera(self, index: int) -> np.ndarray:
        return self.pair(index)[0]

    def lidar(self, index: int) -> np.ndarray:
        return self.pair(index)[1]


class LazyPictures(PictureSet):
    """Pictures made on demand from an indexed source (picklable for DataLoader workers
    when the source is)."""

    def __init__(self, source: IndexedSource, pre: PreprocessConfig) -> None:
        if not isinstance(source, IndexedSource):
            raise DatasetError(
                f"{source.name}: a streaming source (bag) must be cached before training"
            )
        self.source = source
        self.pre = pre
        self.name = source.name
        poses = source.poses
        self.poses = None if poses is None else np.asarray(poses, dtype=np.float64)
        self.file_poses = source_file_poses(source)

    def __len__(self) -> int:
        return len(self.source)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return frame_pictures(self.source.frame(index), self.pre, self.name)

    def camera(self, index: int) -> np.ndarray:
        frame = self.source.frame(index, points=False)
        if frame.image is None:
            raise DatasetError(f"{self.name}: frame {index} has no image")
        return camera_picture(frame.image, self.pre)

    def lidar(self, index: int) -> np.ndarray:
        frame = self.source.frame(index, image=False)
        if frame.points is None:
            raise DatasetError(f"{self.name}: frame {index} has no scan")
        return lidar_picture(frame.points, self.pre)


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
        count = int(meta["count"])
        cam, lid = int(meta["camera_size"]), int(meta["lidar_size"])
        self._camera = self._map("camera.u8", (count, cam, cam, 3))
        self._lidar = self._map("lidar.u8", (count, lid, lid))
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
        return np.asarray(self._camera[index]), np.asarray(self._lidar[index])

    def camera(self, index: int) -> np.ndarray:
        return np.asarray(self._camera[index])

    def lidar(self, index: int) -> np.ndarray:
        return np.asarray(self._lidar[index])


# -- the cache ----------------------------------------------------------------------------


def cache_key(spec: str, source: FrameSource, pre: PreprocessConfig) -> str:
    """16 hex digits naming what a cache holds: the spec, the preprocessing, and (for
    indexed sources) the frame count and stamps, so that changed data makes a new entry."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, spec, to_dict(pre)], sort_keys=True).encode())
    if isinstance(source, IndexedSource):
        digest.update(str(len(source)).encode())
        digest.update(np.ascontiguousarray(source.stamps, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "source"


class _RenderItems:
    """(entry, index, camera picture, LiDAR picture) over the frames of several indexed
    sources in a row, so that one pool of DataLoader workers renders them all (a pool per
    source costs its start-up and its idle tail once per source)."""

    def __init__(self, sources: list[IndexedSource], pre: PreprocessConfig) -> None:
        self.pictures = [LazyPictures(source, pre) for source in sources]
        self.ends = np.cumsum([len(p) for p in self.pictures])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, item: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        entry = int(np.searchsorted(self.ends, item, side="right"))
        index = item - (int(self.ends[entry - 1]) if entry else 0)
        cam, lid = self.pictures[entry].pair(index)
        return entry, index, cam, lid


def _as_is(item: Any) -> Any:
    return item


class _EntryWriter:
    """One cache entry being written into a temporary folder, renamed into place only when
    complete, so that an interrupted run leaves no half entry behind."""

    def __init__(self, spec: str, source: FrameSource, pre: PreprocessConfig, folder: Path):
        self.spec, self.source, self.pre, self.folder = spec, source, pre, folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        self.cam_file = (self.tmp / "camera.u8").open("wb")
        self.lid_file = (self.tmp / "lidar.u8").open("wb")
        self.poses: list[np.ndarray] = []
        self.has_pose = False

    def add(self, cam: np.ndarray, lid: np.ndarray, pose: np.ndarray | None) -> None:
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


def cache_folder(spec: str, source: FrameSource, pre: PreprocessConfig, root: Path) -> Path:
    """Where the cache entry of ``source`` lives under ``root``."""
    return Path(root) / f"{_safe_name(source.name)}-{cache_key(spec, source, pre)}"


def cache_pictures(
    spec: str,
    source: FrameSource,
    pre: PreprocessConfig,
    cache_root: str | Path,
    *,
    workers: int = 0,
    progress: bool = True,
) -> CachedPictures:
    """The cache entry of ``source`` under ``cache_root``, written first if missing."""
    return cache_many([(spec, source)], pre, cache_root, workers=workers, progress=progress)[0]


def cache_many(
    entries: list[tuple[str, FrameSource]],
    pre: PreprocessConfig,
    cache_root: str | Path,
    *,
    workers: int = 0,
    progress: bool = True,
) -> list[CachedPictures]:
    """The cache entries of ``(spec, source)`` pairs, in order; the missing ones are written,
    those of indexed sources all through one pool of ``workers`` rendering processes, and
    streaming sources (bags) one after another in this process."""
    for _, source in entries:
        if isinstance(source, IndexedSource) and len(source) == 0:
            raise DatasetError(f"{source.name}: no frames to cache")
    folders = [cache_folder(spec, source, pre, Path(cache_root)) for spec, source in entries]
    missing = [i for i, folder in enumerate(folders) if not (folder / "meta.json").is_file()]
    indexed = [i for i in missing if isinstance(entries[i][1], IndexedSource)]
    for i in missing:
        if i not in indexed:
            _cache_stream(*entries[i], pre, folders[i], progress)
    if indexed:
        _cache_indexed([entries[i] for i in indexed], [folders[i] for i in indexed], pre,
                       workers=workers, progress=progress)  # fmt: skip
    return [CachedPictures(folder) for folder in folders]


def _cache_stream(
    spec: str, source: FrameSource, pre: PreprocessConfig, folder: Path, progress: bool
) -> None:
    from tqdm import tqdm

    writer = _EntryWriter(spec, source, pre, folder)
    try:
        for frame in tqdm(source.iter_frames(), desc=f"caching {source.name}", unit="frame",
                          disable=not progress):  # fmt: skip
            writer.add(*frame_pictures(frame, pre, source.name), frame.pose)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _cache_indexed(
    entries: list[tuple[str, FrameSource]],
    folders: list[Path],
    pre: PreprocessConfig,
    *,
    workers: int,
    progress: bool,
) -> None:
    import torch.utils.data
    from tqdm import tqdm

    sources = [source for _, source in entries]
    items = _RenderItems(sources, pre)  # type: ignore[arg-type]
    poses = [source.poses for source in sources]
    loader = torch.utils.data.DataLoader(
        items, batch_size=None, num_workers=workers, collate_fn=_as_is
    )
    what = sources[0].name if len(sources) == 1 else f"{len(sources)} sources"
    bar = tqdm(total=len(items), desc=f"caching {what}", unit="frame", disable=not progress)
    writer: _EntryWriter | None = None
    try:
        for entry, index, cam, lid in loader:  # in order: entry by entry, frame by frame
            if writer is None:
                writer = _EntryWriter(*entries[entry], pre, folders[entry])
            writer.add(cam, lid, None if poses[entry] is None else poses[entry][index])
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
