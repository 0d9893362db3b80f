"""The names this module has always offered, now from :mod:`liploc_ros.mapdb.indexes`.

Nearest neighbours of camera embeddings among a map's LiDAR embeddings, by inner product:
each index kind is a class in its own module of that package, listed in its registry.
``INDEX_KINDS`` is read from the registry on each access, so it includes kinds registered
later.
"""

from __future__ import annotations

from typing import Any

from liploc_ros.mapdb.indexes.approx import (
    DEFAULT_RERANK,
    DEFAULT_TARGET_RECALL,
    DEFAULT_TUNING_NOISE,
    DEFAULT_TUNING_QUERIES,
)
from liploc_ros.mapdb.indexes.exact import ExactSearcher, exact_search, rescore
from liploc_ros.mapdb.indexes.faiss_support import (
    faiss_threads,
    gpu_count,
    require_gpu,
    threads_for,
)
from liploc_ros.mapdb.indexes.ivf import default_nlist
from liploc_ros.mapdb.indexes.legacy import IndexParams
from liploc_ros.mapdb.indexes.registry import AUTO_APPROX_MIN_ENTRIES, resolve_kind

#: also ``INDEX_KINDS`` ("auto" and every registered kind), computed by ``__getattr__``
__all__ = [
    "AUTO_APPROX_MIN_ENTRIES",
    "DEFAULT_RERANK",
    "DEFAULT_TARGET_RECALL",
    "DEFAULT_TUNING_NOISE",
    "DEFAULT_TUNING_QUERIES",
    "ExactSearcher",
    "IndexParams",
    "default_nlist",
    "exact_search",
    "faiss_threads",
    "gpu_count",
    "require_gpu",
    "rescore",
    "resolve_kind",
    "threads_for",
]


def __getattr__(name: str) -> Any:
    if name == "INDEX_KINDS":
        from liploc_ros.mapdb.indexes.registry import index_choices

        return index_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
