"""The LiDAR map database: embeddings with poses in one verified file, searched with FAISS.

See :mod:`liploc_ros.mapdb.fileformat` for the file layout and
:mod:`liploc_ros.mapdb.indexes` for the search index kinds.
"""

from typing import Any

from liploc_ros.mapdb.database import MapDatabase
from liploc_ros.mapdb.fileformat import MAP_FORMAT_VERSION
from liploc_ros.mapdb.indexes.legacy import IndexParams
from liploc_ros.mapdb.indexes.registry import AUTO_APPROX_MIN_ENTRIES
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.mapdb.merge import merge_maps
from liploc_ros.mapdb.search import SearchResult


def __getattr__(name: str) -> Any:
    """``INDEX_KINDS``: "auto" and every registered index kind, read when asked for."""
    if name == "INDEX_KINDS":
        from liploc_ros.mapdb.indexes.registry import index_choices

        return index_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUTO_APPROX_MIN_ENTRIES",
    "MAP_FORMAT_VERSION",
    "IndexParams",
    "MapDatabase",
    "MapInfo",
    "SearchResult",
    "merge_maps",
]
