"""Which paths rosbags' AnyReader should open for the bag a user names.

Users bring bags in four shapes: a ROS 1 ``.bag`` file, a ROS 2 bag folder (``metadata.yaml``
beside its storage files), one storage file of such a folder, and a bare ``.mcap`` (or
``.db3``) file with no ``metadata.yaml`` at all, as kitti2mcap and other converters write
it; a folder holding only such bare files counts too. rosbags reads every one of these;
:func:`bag_reader_paths` turns the user's path into AnyReader's list, or says clearly what
the path is not. Every command and node that takes a bag goes through it.
"""

from __future__ import annotations

from pathlib import Path

from liploc_ros.errors import DatasetError

__all__ = ["STORAGE_SUFFIXES", "bag_reader_paths"]

#: storage files rosbags reads without a metadata.yaml (mcap first: what converters write)
STORAGE_SUFFIXES = (".mcap", ".db3")


def bag_reader_paths(path: str | Path) -> list[Path]:
    """AnyReader's paths for ``path``: ``[bag folder]``, ``[file.bag]``, ``[file.mcap]`` or
    the bare storage files of a folder without metadata.yaml (sorted by name); a
    :class:`DatasetError` for anything else."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return [path]
        for suffix in STORAGE_SUFFIXES:
            files = sorted(p for p in path.glob(f"*{suffix}") if p.is_file())
            if files:
                return files
        raise DatasetError(
            f"{path} is a directory without metadata.yaml and without .mcap or .db3 files, "
            "not a ROS 2 bag"
        )
    if path.is_file():
        if path.suffix == ".bag":
            return [path]
        if (path.parent / "metadata.yaml").is_file():
            return [path.parent]  # one storage file of a bag folder: the folder is the bag
        if path.suffix in STORAGE_SUFFIXES:
            return [path]  # a bare storage file (kitti2mcap): rosbags reads it alone
        raise DatasetError(
            f"{path}: not a ROS 1 .bag, a ROS 2 .mcap / .db3 file or a file of a ROS 2 bag "
            "folder (no metadata.yaml beside it)"
        )
    raise DatasetError(f"no bag at {path}")
