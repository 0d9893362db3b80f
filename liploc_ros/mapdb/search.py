"""A map's search: its exact searcher, the index of its kind, and the checks on queries.

The database holds one :class:`MapSearch`; the index kind decides how candidates are found,
this module what every search guarantees (checked queries, exact scores, k columns padded
with -1 / -inf).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.mapdb.indexes import registry
from liploc_ros.mapdb.indexes.base import MapIndex
from liploc_ros.mapdb.indexes.exact import ExactSearcher
from liploc_ros.mapdb.indexes.flat import FlatIndex


@dataclass(frozen=True)
class SearchResult:
    """The k best map entries per query, best first."""

    #: (Q, k) int64 entry indices; -1 where the map has fewer than k entries
    indices: np.ndarray
    #: (Q, k) float32 exact inner products; -inf where there is no entry
    scores: np.ndarray
    #: (Q, k, 4, 4) float64 entry poses ``T_map_lidar``; NaN where there is no entry
    poses: np.ndarray


class MapSearch:
    """Exact search over ``embeddings`` and the map's index (a flat map's index is the
    exact searcher itself, so GPU use and ``exact=True`` share it)."""

    def __init__(self, embeddings: np.ndarray, model_name: str) -> None:
        self.exact = ExactSearcher(embeddings)
        self.index: MapIndex = FlatIndex(self.exact, FlatIndex.params_type())
        self._model_name = model_name

    def build(self, kind: str, **options: Any) -> MapIndex:
        """Build (or, for "flat", drop) the index; "auto" picks by map size."""
        self.index = registry.build_index(self.exact, kind, **options)
        return self.index

    def for_save(self, kind: str, options: Mapping[str, Any] | None, progress: bool) -> MapIndex:
        """The index to store for ``kind``: the current one when it is of that kind and
        no build options are given, else a new one (not adopted until the file is written)."""
        concrete = registry.resolve_kind(kind, self.exact.embeddings.shape[0])
        if self.index.name == concrete and not options:
            return self.index
        options = {"progress": progress, **(options or {})}
        return registry.build_index(self.exact, concrete, **options)

    def set_search_params(self, **overrides: int | None) -> None:
        """Override stored search-time parameters (None keeps the stored value)."""
        self.index.set_search_params(**{k: v for k, v in overrides.items() if v is not None})

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        dim = self.exact.embeddings.shape[1]
        if q.ndim != 2 or q.shape[1] != dim:
            raise MapError(
                f"query embeddings have shape {np.shape(queries)}, but this map holds "
                f"{dim}-d embeddings (model {self._model_name})"
            )
        if not np.issubdtype(q.dtype, np.floating):
            raise MapError(f"query embeddings must be floating point, not {q.dtype}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise MapError("query embedding contains NaN or inf")
        return q

    def search(self, queries: np.ndarray, k: int, *, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k) float32, ids (Q, k) int64) padded with -inf / -1, best first."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        k = int(k)
        q = self._queries(queries)
        if self.exact.embeddings.shape[0] == 0:
            scores = np.zeros((q.shape[0], 0), np.float32)
            ids = np.zeros((q.shape[0], 0), np.int64)
        elif exact and self.index.approximate:
            scores, ids = self.exact.search(q, k)
        else:
            scores, ids = self.index.search(q, k)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.hstack([ids, np.full((q.shape[0], pad), -1, np.int64)])
            scores = np.hstack([scores, np.full((q.shape[0], pad), -np.inf, np.float32)])
        return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)
