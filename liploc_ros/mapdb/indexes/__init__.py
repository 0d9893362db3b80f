"""Search index kinds of a map: each a :class:`MapIndex` in its own module, all listed in
:mod:`~liploc_ros.mapdb.indexes.registry`.

- :mod:`.base`: the protocol (build, search, search-time parameters, GPU, header, describe)
- :mod:`.exact`, :mod:`.faiss_support`: exact search and re-scoring, FAISS threads and GPUs
- :mod:`.flat`, :mod:`.ivf`, :mod:`.hnsw`: the kinds (:mod:`.approx`: what ivf and hnsw share)
- :mod:`.legacy`: the header record the three built-in kinds keep writing
- :mod:`.stored`: an index inside a map file
"""

from liploc_ros.mapdb.indexes.base import MapIndex
from liploc_ros.mapdb.indexes.registry import (
    build_index,
    get_kind,
    index_choices,
    kind_names,
    register,
    resolve_kind,
    unregister,
)

__all__ = [
    "MapIndex",
    "build_index",
    "get_kind",
    "index_choices",
    "kind_names",
    "register",
    "resolve_kind",
    "unregister",
]
