"""Embedded synthetic drives for bench_sequence: map entries and query streams, cached.

Rendering and encoding dominate a sequence benchmark, while the filter runs on embeddings
only; so each drive is embedded once per model (keyed by its fingerprint) and kept as an
.npz file under the cache folder. A map is built as ``liploc build-map`` builds one: the
LiDAR embedding of every keyframe 1 m apart of traversal 0, at each crop heading asked for.
A query stream is the camera embedding of every frame of a traversal, with its ground
truth, its simulated drifting odometry and its stamps.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.mapping.headings import heading_turn
from liploc_ros.mapping.keyframes import select_keyframes
from liploc_ros.model import Embedder
from liploc_ros.training.sources import scan_window


@dataclass(frozen=True)
class QueryStream:
    """A traversal's camera embeddings with truth, odometry and stamps (all per frame)."""

    embeddings: np.ndarray
    truth: np.ndarray
    odometry: np.ndarray
    stamps: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.stamps)


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def map_arrays(
    embedder: Embedder, cache: Path, seed: int, frames: int = 300, headings: tuple = (0.0,)
) -> dict:
    """Embeddings, poses, stamps, headings and keyframe ids of town ``seed``'s mapping drive
    (traversal 0): one entry per keyframe and crop heading, keyframe by keyframe, its pose
    the LiDAR pose turned by the heading (as ``liploc build-map --headings`` stores them)."""
    per = [_heading_arrays(embedder, cache, seed, frames, float(h)) for h in headings]
    n, k = len(per[0]["stamps"]), len(per)
    turn = np.stack([heading_turn(float(h)) for h in headings])
    return {
        "embeddings": np.stack([p["embeddings"] for p in per], axis=1).reshape(n * k, -1),
        "poses": np.einsum("nij,hjk->nhik", per[0]["poses"], turn).reshape(n * k, 4, 4),
        "stamps": np.repeat(per[0]["stamps"], k),
        "heading_deg": np.tile(np.asarray(headings, np.float32), n),
        "keyframes": np.repeat(np.arange(n, dtype=np.int64), k),
    }


def _heading_arrays(embedder: Embedder, cache: Path, seed: int, frames: int, heading: float):
    tag = "" if heading == 0.0 else f"_h{heading:g}"
    path = cache / embedder.fingerprint / f"map_s{seed}_t0_{frames}{tag}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    pre = embedder.loaded.preprocess
    window = dataclasses.replace(scan_window(pre.lidar), azimuth_centre=np.radians(heading))
    drive = make_drive(seed, 0, frames, lidar_window=window)
    keep = select_keyframes(drive.poses[:, :3, 3], 1.0)
    scans = [drive.frame(int(i), image=False).points for i in keep]
    arrays = {
        "embeddings": embedder.embed_scans(scans, heading_deg=heading),
        "poses": drive.poses[keep],
        "stamps": drive.stamps[keep],
    }
    _save(path, **arrays)
    return arrays


def query_stream(
    embedder: Embedder, cache: Path, seed: int, traversal: int, frames: int = 300
) -> QueryStream:
    """The camera embeddings of every frame of ``traversal`` of town ``seed``."""
    path = cache / embedder.fingerprint / f"query_s{seed}_t{traversal}_{frames}.npz"
    name = f"synthetic/seed{seed}/t{traversal}"
    if not path.exists():
        drive = make_drive(seed, traversal, frames)
        images = [drive.frame(i, points=False).image for i in range(len(drive))]
        _save(
            path,
            embeddings=embedder.embed_images(images),
            truth=drive.poses,
            odometry=drive.odometry,
            stamps=drive.stamps,
        )
    with np.load(path) as data:
        return QueryStream(
            data["embeddings"], data["truth"], data["odometry"], data["stamps"], name
        )


def build_map(embedder: Embedder, parts: list[dict], names: list[str]) -> MapDatabase:
    """One map from embedded drives (already shifted into one frame where needed)."""
    loaded = embedder.loaded
    info = MapInfo(
        model_fingerprint=loaded.fingerprint,
        model_name=loaded.model_config.name,
        embed_dim=embedder.embed_dim,
        normalized=bool(loaded.model_config.normalize),
        lidar=loaded.preprocess.lidar,
        frame_id="map",
        sources=tuple(names),
    )
    emb = np.concatenate([p["embeddings"] for p in parts])
    poses = np.concatenate([p["poses"] for p in parts])
    stamps = np.concatenate([p["stamps"] for p in parts])
    source = np.concatenate([np.full(len(p["stamps"]), i, np.int32) for i, p in enumerate(parts)])
    headings = np.concatenate([p["heading_deg"] for p in parts])
    keyframes, offset = [], 0
    for p in parts:
        keyframes.append(p["keyframes"] + offset)
        offset += int(p["keyframes"].max()) + 1
    return MapDatabase.from_poses(
        emb, poses, stamps, info, source_index=source, heading_deg=headings,
        keyframes=np.concatenate(keyframes),
    )  # fmt: skip


def shifted(part: dict, dx: float, dy: float) -> dict:
    """A map part moved by (dx, dy) metres (towns side by side in one merged map)."""
    poses = part["poses"].copy()
    poses[:, 0, 3] += dx
    poses[:, 1, 3] += dy
    return {**part, "poses": poses}
