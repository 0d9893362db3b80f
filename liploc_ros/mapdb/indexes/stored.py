"""An index inside a map file: the header's "index" entry and the "index" section.

Kept apart from :mod:`liploc_ros.mapdb.database` so that the database reads and writes any
registered kind the same way; every error names the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liploc_ros.errors import MapError
from liploc_ros.mapdb import fileformat
from liploc_ros.mapdb.indexes import registry
from liploc_ros.mapdb.indexes.base import MapIndex
from liploc_ros.mapdb.indexes.exact import ExactSearcher

#: the file section a kind with ``stores_blob`` writes
SECTION = "index"


def parse_header(path: Path, entry: Mapping[str, Any] | None) -> tuple[type[MapIndex], Any]:
    """The kind and parameters of a header's "index" entry (none: a flat map).

    ConfigError for bad parameters (the caller reports an invalid header); MapError for a
    kind this version does not know.
    """
    entry = {} if entry is None else entry
    if not isinstance(entry, Mapping):
        raise MapError(f"map file {path}: invalid header: index is not a mapping")
    name = entry.get("kind", registry.AUTO_SMALL)
    if not isinstance(name, str) or name not in registry.kind_names():
        raise MapError(f"map file {path}: unknown index kind {name!r}")
    kind = registry.get_kind(name)
    return kind, kind.params_from_header(entry)


def open_index(
    path: Path,
    container: fileformat.Container,
    handle: Any,
    kind: type[MapIndex],
    params: Any,
    exact: ExactSearcher,
) -> MapIndex:
    """The stored index, checked to cover the map's entries."""
    read = None
    if kind.stores_blob:
        if SECTION not in container.sections:
            raise MapError(f"map file {path}: the header names a {kind.name} index, none stored")
        read = fileformat.section_reader(container, handle, SECTION)
    try:
        index = kind.open(exact, params, read)
    except RuntimeError as err:  # FAISS reports a malformed index this way
        raise MapError(f"map file {path}: the stored {kind.name} index is invalid: {err}") from err
    entries, dim = index.shape
    n, d = exact.embeddings.shape
    if (entries, dim) != (n, d):
        raise MapError(
            f"map file {path}: array shapes inconsistent: the stored index holds "
            f"{entries} x {dim}, the map {n} x {d}"
        )
    return index


def blobs(index: MapIndex) -> dict[str, Any] | None:
    """The file sections ``index`` writes (for :func:`fileformat.write_container`)."""
    return {SECTION: index.write} if index.stores_blob else None
