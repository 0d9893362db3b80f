"""``flat``: exact search, nothing built or stored (see :mod:`liploc_ros.mapdb.indexes.exact`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from liploc_ros.errors import ConfigError
from liploc_ros.mapdb.indexes.base import MapIndex
from liploc_ros.mapdb.indexes.exact import ExactSearcher
from liploc_ros.mapdb.indexes.legacy import LegacyHeader


@dataclass(frozen=True)
class FlatParams:
    """Exact search has no parameters."""

    kind: ClassVar[str] = "flat"


class FlatIndex(LegacyHeader, MapIndex):
    """Every entry scored exactly, on the CPU or (faiss-gpu) a GPU."""

    name = "flat"
    summary = "exact search"
    params_type = FlatParams
    approximate = False
    gpu = True
    stores_blob = False

    @classmethod
    def build(cls, exact: ExactSearcher, *, progress: bool = True, **options: Any) -> FlatIndex:
        """Nothing to build; approximate kinds' ``options`` are ignored (``"auto"`` may pick
        flat for a small map)."""
        return cls(exact, FlatParams())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.exact.search(queries, k)

    def set_search_params(self, **overrides: int) -> None:
        raise ConfigError("this map has no approximate index (it is searched exactly)")

    def to_gpu(self, device: int = 0) -> None:
        self.exact.to_gpu(device)

    @classmethod
    def describe(cls, params: Any) -> str:
        return "flat (exact search)"
