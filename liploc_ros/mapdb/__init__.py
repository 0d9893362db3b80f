"""The LiDAR map database: embeddings with poses in one verified file, searched with FAISS.

See :mod:`liploc_ros.mapdb.fileformat` for the file layout and :mod:`liploc_ros.mapdb.index`
for the search strategies.
"""

from liploc_ros.mapdb.database import MapDatabase, SearchResult
from liploc_ros.mapdb.fileformat import MAP_FORMAT_VERSION
from liploc_ros.mapdb.index import AUTO_APPROX_MIN_ENTRIES, INDEX_KINDS, IndexParams
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.mapdb.merge import merge_maps

__all__ = [
    "AUTO_APPROX_MIN_ENTRIES",
    "INDEX_KINDS",
    "MAP_FORMAT_VERSION",
    "IndexParams",
    "MapDatabase",
    "MapInfo",
    "SearchResult",
    "merge_maps",
]
