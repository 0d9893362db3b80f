"""What every index kind is: one class that builds, searches, stores and describes itself.

A kind is a :class:`MapIndex` subclass listed in :mod:`liploc_ros.mapdb.indexes.registry`;
the map database, the map file, ``liploc map-info``, the CLI's choices and the node's
parameter validation all go through these methods, so adding a kind touches its own module
and one registry entry, nothing else.

Every kind searches by raw inner product (the authors' main variants do not normalise) and
returns exact scores; an approximate kind only proposes candidates, re-scored exactly.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from liploc_ros.config import from_dict, to_dict
from liploc_ros.errors import ConfigError, DeviceError
from liploc_ros.mapdb.indexes.exact import ExactSearcher

#: ``read(n)`` returns the next ``n`` bytes of the map file's "index" section
Reader = Callable[[int], bytes]
#: ``write(data)`` appends to the map file's "index" section
Writer = Callable[[bytes], Any]


class MapIndex(ABC):
    """A built index of one kind over a map's embeddings (the map's :class:`ExactSearcher`
    holds them; exact kinds search through it, so ``exact=True`` and GPU use share it)."""

    #: the name maps, configs, the CLI and node parameters use
    name: ClassVar[str]
    #: a few words for ``--help`` and parameter descriptions
    summary: ClassVar[str]
    #: the frozen dataclass of build and search parameters stored in the map header
    params_type: ClassVar[type]
    #: whether search only proposes candidates (then ``exact=True`` searches bypass it)
    approximate: ClassVar[bool] = True
    #: whether :meth:`to_gpu` can move search to a GPU
    gpu: ClassVar[bool] = False
    #: whether the index is serialized into the map file (else rebuilt from the header)
    stores_blob: ClassVar[bool] = True
    #: search-time parameters :meth:`set_search_params` accepts (positive integers)
    search_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, exact: ExactSearcher, params: Any) -> None:
        self.exact = exact
        self.params = params

    # -------------------------------------------------------------------- build and open

    @classmethod
    @abstractmethod
    def build(cls, exact: ExactSearcher, *, progress: bool = True, **options: Any) -> MapIndex:
        """Build over ``exact.embeddings``; ``options`` are the kind's build settings."""

    @classmethod
    def open(cls, exact: ExactSearcher, params: Any, read: Reader | None) -> MapIndex:
        """The index a map file stores: ``params`` from its header, ``read`` its section
        (None when the kind stores no blob)."""
        return cls(exact, params)

    def write(self, write: Writer) -> None:
        """Stream the serialized index through ``write`` (kinds with ``stores_blob``)."""
        raise NotImplementedError(f"the {self.name} index stores nothing in the map file")

    @property
    def shape(self) -> tuple[int, int]:
        """(entries, dim) the index covers; checked against the map on load."""
        return tuple(self.exact.embeddings.shape)

    # ----------------------------------------------------------------------------- search

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of (Q, D) float32 ``queries``: (scores float32, ids int64, -1 = none),
        best first, exact scores."""

    def set_search_params(self, **overrides: int) -> None:
        """Trade speed for recall after building or loading."""
        unknown = sorted(set(overrides) - set(self.search_params))
        if unknown:
            known = ", ".join(self.search_params) or "none"
            raise ConfigError(
                f"the {self.name} index has no search parameter(s) {', '.join(unknown)} "
                f"(it has: {known})"
            )
        for key, value in overrides.items():
            self.check_search_param(key, value)
        self.apply_search_params({key: int(value) for key, value in overrides.items()})

    def check_search_param(self, key: str, value: int) -> None:
        """ConfigError unless ``value`` is valid for ``key`` (default: positive)."""
        if value < 1:
            raise ConfigError(f"{key} must be positive, not {value}")

    def apply_search_params(self, changes: Mapping[str, int]) -> None:
        """Adopt checked search-time parameters into :attr:`params`."""
        self.params = dataclasses.replace(self.params, **changes)

    def to_gpu(self, device: int = 0) -> None:
        """Search on GPU ``device`` (DeviceError where the kind or FAISS cannot)."""
        raise DeviceError(f"the {self.name} index cannot search on a GPU")

    # ------------------------------------------------------------------ header and text

    @classmethod
    def params_to_header(cls, params: Any) -> dict[str, Any]:
        """The map header's "index" entry: the kind's name and its parameters."""
        return {"kind": cls.name, **to_dict(params)}

    @classmethod
    def params_from_header(cls, header: Mapping[str, Any]) -> Any:
        """The parameters of a map header's "index" entry (ConfigError on unknown keys)."""
        rest = {key: value for key, value in header.items() if key != "kind"}
        return from_dict(cls.params_type, rest, "index")

    @classmethod
    @abstractmethod
    def describe(cls, params: Any) -> str:
        """One line for ``liploc map-info``."""

    def header(self) -> dict[str, Any]:
        return self.params_to_header(self.params)
