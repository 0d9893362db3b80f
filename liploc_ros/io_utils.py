"""Atomic file writes: a reader never sees a half-written file where a good one was.

Every writer in the package goes through these helpers. The data is written to a temporary
file in the destination's own folder (so that the final rename never crosses a file system),
flushed to disk, and only then renamed over the destination with :func:`os.replace`, which
is atomic on POSIX and Windows. If anything fails on the way, the temporary file is removed
and the old destination, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, not per write, because
    # the brief window with umask 0 is visible to other threads creating files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block exits cleanly.

    ``mode`` is "wb" or "w" (text, UTF-8, "\\n" line endings). ``fsync`` also forces the
    data to disk before the rename; it costs time and matters only against power loss, so
    bulk frame writers leave it off.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        handle: IO[Any]
        if mode == "w":
            handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        else:
            handle = os.fdopen(fd, "wb")
        with handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.chmod(tmp_name, 0o666 & ~_UMASK)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    with atomic_open(path, "w", fsync=fsync) as handle:
        handle.write(text)
