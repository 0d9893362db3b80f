"""Merging maps: several drives' maps become one, if they are comparable.

Entries from maps built by different models, with different LiDAR preprocessing or in
different frames would be searched against each other as if they were alike; merging refuses
them instead, naming the two maps and the difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from liploc_ros.errors import MapError, ModelMismatchError
from liploc_ros.mapdb.database import MapDatabase


def _name(db: MapDatabase, i: int) -> str:
    return str(db.path) if db.path is not None else f"map #{i + 1}"


def _check_compatible(first: MapDatabase, other: MapDatabase, j: int) -> None:
    a, b = first.info, other.info
    pair = f"{_name(first, 0)} and {_name(other, j)}"
    if a.model_fingerprint != b.model_fingerprint:
        raise ModelMismatchError(
            f"cannot merge {pair}: built with different models, {a.model_name!r} (fingerprint "
            f"{a.model_fingerprint}) and {b.model_name!r} (fingerprint {b.model_fingerprint})"
        )
    if a.embed_dim != b.embed_dim or first.dim != other.dim:
        raise ModelMismatchError(
            f"cannot merge {pair}: {first.dim}-d and {other.dim}-d embeddings"
        )
    if a.normalized != b.normalized:
        raise MapError(f"cannot merge {pair}: one has L2-normalised embeddings, the other not")
    if a.lidar != b.lidar:
        fields = [
            f"{f.name} {getattr(a.lidar, f.name)!r} vs {getattr(b.lidar, f.name)!r}"
            for f in dataclasses.fields(a.lidar)
            if getattr(a.lidar, f.name) != getattr(b.lidar, f.name)
        ]
        raise MapError(f"cannot merge {pair}: different LiDAR preprocessing ({'; '.join(fields)})")
    if a.frame_id != b.frame_id:
        raise MapError(
            f"cannot merge {pair}: poses in different frames ({a.frame_id!r} vs {b.frame_id!r})"
        )


def merge_maps(maps: Sequence[MapDatabase]) -> MapDatabase:
    """One map holding every entry of ``maps`` in order (in memory; save it to keep it).

    Sources with the same name are one source. The result is float16 only if every input is.
    Headings are kept; keyframe ids are offset map by map, so that keyframes of different
    maps stay distinct.
    """
    maps = list(maps)
    if not maps:
        raise MapError("nothing to merge: no maps given")
    for j, other in enumerate(maps[1:], start=1):
        _check_compatible(maps[0], other, j)
    names: list[str] = []
    remapped = []
    for i, db in enumerate(maps):
        own = db.info.sources or (f"unnamed source of {_name(db, i)}",)
        lookup = []
        for source in own:
            if source not in names:
                names.append(source)
            lookup.append(names.index(source))
        remapped.append(np.asarray(lookup, np.int32)[np.asarray(db.source_index)])
    keyframes, offset = [], 0
    for db in maps:
        kept = np.asarray(db.keyframes)
        keyframes.append(kept + offset)
        offset += int(kept.max()) + 1 if kept.size else 0
    dtype = np.float16 if all(db.dtype == np.float16 for db in maps) else np.float32
    info = dataclasses.replace(
        maps[0].info, sources=tuple(names), created="", liploc_ros_version=""
    )
    return MapDatabase(
        np.concatenate([np.asarray(db.embeddings, dtype=dtype) for db in maps]),
        np.concatenate([db.positions for db in maps]),
        np.concatenate([db.orientations for db in maps]),
        np.concatenate([db.stamps for db in maps]),
        info,
        source_index=np.concatenate(remapped),
        frame_index=np.concatenate([db.frame_index for db in maps]),
        heading_deg=np.concatenate([db.heading_deg for db in maps]),
        keyframes=np.concatenate(keyframes),
    )
