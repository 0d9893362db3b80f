"""The numeric text files of KITTI-style datasets: pose lists, calibration tables, times.

Readers report every problem as ``<file>:<line>: <problem>`` in a
:class:`~liploc_ros.errors.DatasetError`, so that a bad line in a 4,500-line pose file is
found at once. Writers format floats with :func:`repr`, the shortest text that parses back
to the very same float64, so a write -> read round trip loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liploc_ros.errors import DatasetError


def format_floats(values: Iterable[float]) -> str:
    """Space-separated floats that parse back bit-identical (``repr`` is exact for float64)."""
    return " ".join(repr(float(v)) for v in values)


def format_pose_row(T: np.ndarray) -> str:
    """The top 3 x 4 of a homogeneous matrix as 12 row-major numbers (KITTI's pose lines)."""
    T = np.asarray(T, dtype=np.float64)
    return format_floats(T[:3, :4].reshape(-1))


def rows_to_matrices(rows: np.ndarray) -> np.ndarray:
    """(M, 12) row-major 3 x 4 blocks or (M, 16) 4 x 4 -> (M, 4, 4) homogeneous float64."""
    rows = np.asarray(rows, dtype=np.float64)
    out = np.zeros((len(rows), 4, 4))
    if rows.shape[1] == 16:
        out[:] = rows.reshape(-1, 4, 4)
    else:
        out[:, :3, :4] = rows.reshape(-1, 3, 4)
        out[:, 3, 3] = 1.0
    return out


def read_text_lines(path: Path, what: str) -> list[str]:
    """The lines of a text file, with a DatasetError that says which file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise DatasetError(f"missing {what}: {path}") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not a text file ({what}): {err}") from err
    except OSError as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from err
    return text.splitlines()


def parse_numbers(tokens: list[str], path: Path, lineno: int) -> list[float]:
    """Parse finite floats; ``lineno`` is 1-based and only used in the error message."""
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError as err:
            raise DatasetError(f"{path}:{lineno}: {token!r} is not a number") from err
        if not math.isfinite(value):
            raise DatasetError(f"{path}:{lineno}: non-finite value {token!r}")
        values.append(value)
    return values


def read_number_rows(
    path: Path, columns: int, *, what: str, indexed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read a file of numeric rows (blank lines skipped).

    Each line holds ``columns`` numbers, preceded by an integer frame index when ``indexed``.
    Returns ``(indices, values)``: (M,) int64 (the 0-based row numbers when not indexed) and
    (M, columns) float64.
    """
    indices: list[int] = []
    values: list[list[float]] = []
    expected = columns + (1 if indexed else 0)
    for lineno, line in enumerate(read_text_lines(path, what), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != expected:
            layout = f"a frame index and {columns} numbers" if indexed else f"{columns} numbers"
            raise DatasetError(f"{path}:{lineno}: expected {layout}, found {len(tokens)} value(s)")
        if indexed:
            try:
                index = int(tokens[0])
            except ValueError as err:
                raise DatasetError(
                    f"{path}:{lineno}: frame index {tokens[0]!r} is not an integer"
                ) from err
            if index < 0:
                raise DatasetError(f"{path}:{lineno}: negative frame index {index}")
            indices.append(index)
            tokens = tokens[1:]
        else:
            indices.append(len(values))
        values.append(parse_numbers(tokens, path, lineno))
    return (
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float64).reshape(-1, columns),
    )


@dataclass(frozen=True)
class KeyValueFile:
    """A ``key: values`` calibration file (KITTI calib.txt, KITTI-360 perspective.txt)."""

    path: Path
    #: key -> (1-based line number, the text after the colon)
    entries: dict[str, tuple[int, str]]

    @classmethod
    def read(cls, path: Path, what: str) -> KeyValueFile:
        entries: dict[str, tuple[int, str]] = {}
        for lineno, line in enumerate(read_text_lines(path, what), start=1):
            if not line.strip():
                continue
            key, colon, rest = line.partition(":")
            key = key.strip()
            if not colon or not key or " " in key:
                raise DatasetError(f"{path}:{lineno}: expected 'KEY: values', got {line!r}")
            if key in entries:
                raise DatasetError(f"{path}:{lineno}: key {key!r} repeats line {entries[key][0]}")
            entries[key] = (lineno, rest)
        return cls(path, entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def floats(self, key: str, count: int) -> np.ndarray:
        """The ``count`` numbers of line ``key``, float64."""
        if key not in self.entries:
            raise DatasetError(f"{self.path}: no '{key}:' line")
        lineno, rest = self.entries[key]
        tokens = rest.split()
        if len(tokens) != count:
            raise DatasetError(
                f"{self.path}:{lineno}: '{key}' has {len(tokens)} value(s), expected {count}"
            )
        return np.asarray(parse_numbers(tokens, self.path, lineno), dtype=np.float64)

    def matrix(self, key: str, rows: int, cols: int) -> np.ndarray:
        """Line ``key`` as a row-major ``rows x cols`` float64 matrix."""
        return self.floats(key, rows * cols).reshape(rows, cols)
