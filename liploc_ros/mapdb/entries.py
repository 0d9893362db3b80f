"""The per-entry arrays of a map: their names, file dtypes, defaults and value checks.

Kept apart from :mod:`liploc_ros.mapdb.database` so that the schema (what a file of each
format version must hold, and what an older one lacks) is written down in one place.

Format version 2 added, per entry, the crop heading (``heading_deg``: which way its
range-image crop faces, degrees counter-clockwise from the LiDAR's x axis, in [0, 360)) and
the keyframe (``keyframe``: the entries of one mapped scan share it, one per heading). A
version 1 file has neither: every entry is the forward crop (heading 0) of a keyframe of
its own, which is what the code that wrote it did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from liploc_ros.errors import MapError
from liploc_ros.mapdb import fileformat

#: every per-entry array, in file order
ARRAYS = (
    "embeddings",
    "positions",
    "orientations",
    "stamps",
    "source_index",
    "frame_index",
    "heading_deg",
    "keyframe",
)
#: the arrays each format version added (a file of an older version lacks them)
ADDED_IN = {"heading_deg": 2, "keyframe": 2}
#: the dtypes a file may store each array in
FILE_DTYPES = {
    "embeddings": ("<f2", "<f4"),
    "positions": ("<f8",),
    "orientations": ("<f8",),
    "stamps": ("<f8",),
    "source_index": ("<i4",),
    "frame_index": ("<i8",),
    "heading_deg": ("<f4",),
    "keyframe": ("<i8",),
}
#: |norm - 1| allowed for an orientation quaternion
QUATERNION_TOLERANCE = 1e-5
_CHECK_ROWS = 1 << 16


def default_array(name: str, n: int) -> np.ndarray:
    """What ``name`` holds for ``n`` entries that never had it (a version 1 map, or a
    caller that does not say): heading 0, one keyframe per entry."""
    if name == "heading_deg":
        return np.zeros(n, np.float32)
    if name == "keyframe":
        return np.arange(n, dtype=np.int64)
    raise KeyError(name)


def integer_array(value: Any, name: str, dtype: type) -> np.ndarray:
    """``value`` as a contiguous ``dtype`` array, refusing fractions (MapError)."""
    raw = np.asarray(value)
    out: np.ndarray = np.ascontiguousarray(raw, dtype=dtype)
    if raw.shape == out.shape and not np.array_equal(raw, out):
        raise MapError(f"{name} must hold integers")
    return out


def first_bad_row(check: Any, array: np.ndarray) -> int | None:
    """Index of the first row failing ``check`` (row-wise bool), scanning in blocks (a
    memory-mapped array is never read whole)."""
    for start in range(0, array.shape[0], _CHECK_ROWS):
        ok = check(np.asarray(array[start : start + _CHECK_ROWS]))
        if not ok.all():
            return start + int(np.flatnonzero(~ok)[0])
    return None


def finite_rows(block: np.ndarray) -> np.ndarray:
    """Row-wise: every value of the row is finite."""
    return np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)


def check_values(arrays: Mapping[str, np.ndarray], sources: Sequence[str]) -> None:
    """Value checks over every entry, MapError naming the first bad one (construction only:
    a loaded map is checksummed). ``sources`` are the map's source names."""
    a = arrays
    bad = first_bad_row(finite_rows, a["embeddings"])
    if bad is not None:
        raise MapError(f"embedding of entry {bad} contains NaN or inf")
    for name in ("positions", "orientations", "stamps"):
        bad = first_bad_row(finite_rows, a[name])
        if bad is not None:
            raise MapError(f"{name[:-1]} of entry {bad} is not finite: {a[name][bad]}")
    norms = np.linalg.norm(a["orientations"], axis=1)
    wrong = np.flatnonzero(np.abs(norms - 1.0) > QUATERNION_TOLERANCE)
    if wrong.size:
        i = int(wrong[0])
        raise MapError(
            f"orientation of entry {i} is not a unit quaternion (norm {norms[i]:.6g}); "
            f"orientations are x, y, z, w ({wrong.size} entries affected)"
        )
    n_sources = max(1, len(sources))
    src = a["source_index"]
    if src.size and (src.min() < 0 or src.max() >= n_sources):
        i = int(np.flatnonzero((src < 0) | (src >= n_sources))[0])
        raise MapError(
            f"source_index of entry {i} is {src[i]}, but the map names {n_sources} "
            f"source(s): {list(sources)}"
        )
    check_heading_per_keyframe(a["heading_deg"], a["keyframe"])


def check_headings(heading_deg: np.ndarray, prefix: str = "") -> None:
    """Every heading finite and in [0, 360) (cheap: run on load too)."""
    for start in range(0, heading_deg.shape[0], _CHECK_ROWS):
        block = np.asarray(heading_deg[start : start + _CHECK_ROWS])
        ok = np.isfinite(block) & (block >= 0.0) & (block < 360.0)
        if not ok.all():
            i = start + int(np.flatnonzero(~ok)[0])
            raise MapError(
                f"{prefix}heading_deg of entry {i} is {block[i - start]}, not in [0, 360) "
                "degrees (liploc_ros.mapping.headings.parse_headings normalises headings)"
            )


def check_keyframes(keyframe: np.ndarray, prefix: str = "") -> None:
    """Every keyframe id >= 0 (cheap: run on load too)."""
    for start in range(0, keyframe.shape[0], _CHECK_ROWS):
        block = np.asarray(keyframe[start : start + _CHECK_ROWS])
        if block.size and block.min() < 0:
            i = start + int(np.flatnonzero(block < 0)[0])
            raise MapError(f"{prefix}keyframe of entry {i} is {block[i - start]}, not >= 0")


def check_heading_per_keyframe(heading_deg: np.ndarray, keyframe: np.ndarray) -> None:
    """No keyframe holds two entries of the same heading (construction only: it sorts)."""
    if keyframe.shape[0] < 2:
        return
    order = np.lexsort((np.asarray(heading_deg), np.asarray(keyframe)))
    k, h = np.asarray(keyframe)[order], np.asarray(heading_deg)[order]
    same = (k[1:] == k[:-1]) & (h[1:] == h[:-1])
    if same.any():
        j = int(np.flatnonzero(same)[0])
        a, b = sorted((int(order[j]), int(order[j + 1])))
        raise MapError(
            f"entries {a} and {b} are both keyframe {k[j]} at heading {h[j]:g} degrees: a "
            "keyframe holds one entry per heading"
        )


def read_arrays(
    container: fileformat.Container, handle: IO[bytes], *, mmap: bool
) -> dict[str, np.ndarray]:
    """The per-entry arrays of an opened map file, dtypes checked; those its format version
    predates take their defaults. MapError names the file and the array."""
    path, version = container.path, container.version
    required = [name for name in ARRAYS if ADDED_IN.get(name, 1) <= version]
    missing = [name for name in required if name not in container.sections]
    if missing:
        raise MapError(
            f"map file {path}: missing array(s) {', '.join(missing)} (format version {version})"
        )
    arrays = {
        name: fileformat.section_array(container, handle, name, mmap=mmap) for name in required
    }
    for name in required:
        array, dtypes = arrays[name], FILE_DTYPES[name]
        ndim = 2 if name in ("embeddings", "positions", "orientations") else 1
        if array.dtype.str not in dtypes or array.ndim != ndim:
            raise MapError(
                f"map file {path}: {name} has dtype {array.dtype} and shape {array.shape}, "
                f"expected {' or '.join(dtypes)} with {ndim} dimension(s)"
            )
    n = arrays["embeddings"].shape[0]
    for name in ARRAYS:
        if name not in arrays:
            arrays[name] = default_array(name, n)
    return arrays
