"""The index kinds a map can carry: the one list that the map file, ``liploc build-map`` /
``merge-maps`` (choices, help), the map builder's config and node parameters (validation,
description) and ``liploc map-info`` read.

A new kind is a :class:`~liploc_ros.mapdb.indexes.base.MapIndex` module plus one entry in
``_BUILT_IN`` (or a :func:`register` call, as the tests do).
"""

from __future__ import annotations

from typing import Any

from liploc_ros.errors import ConfigError
from liploc_ros.mapdb.indexes.base import MapIndex
from liploc_ros.mapdb.indexes.exact import ExactSearcher
from liploc_ros.mapdb.indexes.flat import FlatIndex
from liploc_ros.mapdb.indexes.hnsw import HnswIndex
from liploc_ros.mapdb.indexes.ivf import IvfIndex

#: the choice that picks a kind by map size (not a kind itself)
AUTO = "auto"
#: "auto" builds an approximate (IVF) index from this many entries on; below, exact search is
#: fast enough (about 1 ms per 20k float32 entries at one query; see bench/bench_search.py).
AUTO_APPROX_MIN_ENTRIES = 200_000
#: what "auto" picks below and from AUTO_APPROX_MIN_ENTRIES on
AUTO_SMALL, AUTO_LARGE = FlatIndex.name, IvfIndex.name

_BUILT_IN: tuple[type[MapIndex], ...] = (FlatIndex, IvfIndex, HnswIndex)
_KINDS: dict[str, type[MapIndex]] = {kind.name: kind for kind in _BUILT_IN}


def register(kind: type[MapIndex]) -> type[MapIndex]:
    """Add ``kind`` under ``kind.name`` (a ConfigError if the name is taken)."""
    if kind.name == AUTO or kind.name in _KINDS:
        raise ConfigError(f"map index kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind :func:`register` added (built-in kinds stay)."""
    if any(kind.name == name for kind in _BUILT_IN):
        raise ConfigError(f"map index kind {name!r} is built in")
    _KINDS.pop(name, None)


def kind_names() -> tuple[str, ...]:
    """The registered kinds, built-in ones first."""
    return tuple(_KINDS)


def index_choices() -> tuple[str, ...]:
    """What a config, flag or parameter may name: "auto" and every kind."""
    return (AUTO, *_KINDS)


def choices_text(last: str = ", ") -> str:
    """The choices for help texts: "auto, flat, ivf, hnsw" (``last`` joins the final two)."""
    *head, tail = index_choices()
    return ", ".join(head) + last + tail


def check_choice(name: str) -> str:
    """``name`` if it is "auto" or a registered kind; else a ConfigError listing them."""
    if name not in index_choices():
        raise ConfigError(f"unknown map index {name!r}; use one of {choices_text()}")
    return name


def get_kind(name: str) -> type[MapIndex]:
    """The class of kind ``name`` (ConfigError for an unknown one or "auto")."""
    kind = _KINDS.get(name)
    if kind is None:
        raise ConfigError(f"unknown map index {name!r}; use one of {', '.join(_KINDS)}")
    return kind


def resolve_kind(kind: str, num_entries: int) -> str:
    """The concrete kind for ``kind`` (a choice) on a map of ``num_entries``."""
    check_choice(kind)
    if kind == AUTO:
        return AUTO_LARGE if num_entries >= AUTO_APPROX_MIN_ENTRIES else AUTO_SMALL
    return kind


def build_index(exact: ExactSearcher, kind: str, **options: Any) -> MapIndex:
    """Build the index ``kind`` (a choice) names over ``exact.embeddings``."""
    concrete = resolve_kind(kind, exact.embeddings.shape[0])
    return get_kind(concrete).build(exact, **options)


def header_of(params: Any) -> dict[str, Any]:
    """The map header's "index" entry for a kind's ``params`` (what map-info --json shows)."""
    return get_kind(params.kind).params_to_header(params)
