"""Where the package's shared files (config/, models/, launch/) live on this install.

A colcon build installs them under ``share/liploc_ros`` and registers the package in the ament
index; a pip install puts them under ``<prefix>/share/liploc_ros``; an editable install or a
source checkout keeps them beside the ``liploc_ros`` folder. The first that exists wins.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "liploc_ros"


def share_dir() -> Path:
    """The folder holding config/, models/ and launch/ for this install."""
    source_tree = Path(__file__).resolve().parent.parent
    if (source_tree / "package.xml").is_file():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError):
        pass
    return Path(sys.prefix) / "share" / PACKAGE


def config_file(name: str) -> Path:
    """A file of the shipped config/ folder."""
    return share_dir() / "config" / name


def models_dir() -> Path:
    """The shipped models/ folder."""
    return share_dir() / "models"


def resolve_shared_path(path: str | Path) -> Path:
    """``path`` (``~`` expanded) if it exists or is absolute; else, for a relative path, the
    same path under :func:`share_dir` (``models/liploc_demo.safetensors``) or under
    :func:`models_dir` (``liploc_demo.safetensors``) where one exists there.

    So that the README's ``model:=models/liploc_demo.safetensors`` works from any directory
    once the package is installed; a path found nowhere is returned as given (the caller's
    "does not exist" names what the user wrote).
    """
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    for base in (share_dir(), models_dir()):
        candidate = base / given
        if candidate.exists():
            return candidate
    return given
