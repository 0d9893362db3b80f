"""Open any drive from a one-line spec: ``kind:arguments``.

    bag:PATH                          ROS 1 .bag / ROS 2 bag folder or file (sqlite3, mcap)
    kitti:ROOT:SEQ  or kitti:SEQ_DIR  KITTI odometry sequence
    kitti360:ROOT:DRIVE               KITTI-360 drive (number or full drive name)
    synthetic:SEED[:TRAVERSAL[:FRAMES]]   a synthetic town's traversal (default 0, 300)

The readers are imported only when their kind is opened, so opening a KITTI folder never
imports rosbags. Keyword options go to the reader: for bags the
:class:`~liploc_ros.datasets.rosbag_reader.BagReaderConfig` fields (``points_topic``,
``pose_topic``, ``pose_source``, ...), for KITTI ``poses_file``, for KITTI-360 ``strict``,
for synthetic drives the town options. The map builder, the localizer and training all open
their data this way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liploc_ros.datasets.base import FrameSource
from liploc_ros.errors import ConfigError

Opener = Callable[[str, dict[str, Any]], FrameSource]


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: how its spec reads and how to open it."""

    name: str
    usage: str
    opener: Opener


SOURCE_KINDS: dict[str, SourceKind] = {}


def register_source(name: str, usage: str, opener: Opener) -> None:
    """Add (or replace) a source kind; ``opener(arguments, options)`` returns the source."""
    SOURCE_KINDS[name.lower()] = SourceKind(name.lower(), usage, opener)


def known_kinds() -> str:
    """``bag:PATH, kitti:ROOT:SEQ, ...`` for error messages and help texts."""
    return ", ".join(kind.usage for kind in SOURCE_KINDS.values())


def parse_spec(spec: str | Path) -> tuple[str, str]:
    """``"kitti:/data:08"`` -> ``("kitti", "/data:08")``, with a clear error for an unknown
    or missing kind."""
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    key = kind.strip().lower()
    if not sep or key not in SOURCE_KINDS:
        what = f"unknown source kind {kind!r}" if sep else "no source kind"
        raise ConfigError(f"source {text!r}: {what}; use one of: {known_kinds()}")
    if not rest.strip():
        raise ConfigError(
            f"source {text!r}: nothing after '{key}:'; expected {SOURCE_KINDS[key].usage}"
        )
    return key, rest.strip()


def expand_spec(spec: str) -> str:
    """A dataset spec with ``${VAR}`` / ``$VAR`` replaced; an unset variable is an error."""
    expanded = os.path.expandvars(spec)
    leftover = re.search(r"\$\{?(\w+)\}?", expanded)
    if leftover:
        raise ConfigError(
            f"dataset spec {spec!r}: environment variable {leftover.group(1)} is not set"
        )
    return expanded


def open_source(spec: str | Path, **options: Any) -> FrameSource:
    """The :class:`FrameSource` a spec names (see the module docstring; ``${VAR}`` expanded,
    so that shipped configs can say ``kitti:${KITTI_ROOT}:08``); ``options`` go to the
    reader, and one it does not take is a :class:`ConfigError`."""
    kind, rest = parse_spec(expand_spec(str(spec)))
    return SOURCE_KINDS[kind].opener(rest, options)


def _check_options(kind: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(
            f"{kind} source: unknown option(s) {', '.join(map(repr, unknown))}; known: {known}"
        )


def _split_last(rest: str, what: str, usage: str) -> tuple[str, str]:
    root, sep, last = rest.rpartition(":")
    if not sep or not root or not last:
        raise ConfigError(f"{what} source {rest!r}: expected {usage}")
    return root, last


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise ConfigError(f"source {spec!r}: {what} must be an integer, got {text!r}") from err


def _open_bag(rest: str, options: dict[str, Any]) -> FrameSource:
    from liploc_ros.datasets.rosbag_reader import BagReaderConfig, RosbagSource

    allowed = {f for f in BagReaderConfig.__dataclass_fields__}
    _check_options("bag", options, allowed)
    return RosbagSource(Path(rest), **options)


_SEQUENCE = re.compile(r"\d{1,2}")


def _open_kitti(rest: str, options: dict[str, Any]) -> FrameSource:
    from liploc_ros.datasets.kitti import KittiOdometry

    _check_options("kitti", options, {"poses_file"})
    root, sep, last = rest.rpartition(":")
    if sep and root and _SEQUENCE.fullmatch(last):
        return KittiOdometry(Path(root), last, **options)
    return KittiOdometry(Path(rest), None, **options)  # a sequence folder


def _open_kitti360(rest: str, options: dict[str, Any]) -> FrameSource:
    from liploc_ros.datasets.kitti360 import Kitti360

    _check_options("kitti360", options, {"strict"})
    root, drive = _split_last(rest, "kitti360", "kitti360:ROOT:DRIVE")
    return Kitti360(Path(root), drive, **options)


def _open_synthetic(rest: str, options: dict[str, Any]) -> FrameSource:
    from liploc_ros.datasets.synthetic import make_drive

    spec = f"synthetic:{rest}"
    parts = rest.split(":")
    if len(parts) > 3:
        raise ConfigError(f"source {spec!r}: expected synthetic:SEED[:TRAVERSAL[:FRAMES]]")
    names = ("seed", "traversal", "frames")
    values = [_int(text, name, spec) for name, text in zip(names, parts, strict=False)]
    seed, traversal, frames = values + [0, 0, 300][len(values) :]
    return make_drive(seed, traversal, frames, **options)


register_source("bag", "bag:PATH", _open_bag)
register_source("kitti", "kitti:ROOT:SEQ (or kitti:SEQUENCE_DIR)", _open_kitti)
register_source("kitti360", "kitti360:ROOT:DRIVE", _open_kitti360)
register_source("synthetic", "synthetic:SEED[:TRAVERSAL[:FRAMES]]", _open_synthetic)
