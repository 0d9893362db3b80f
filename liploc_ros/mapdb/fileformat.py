"""The map file container: one file, written atomically, verified on load, no pickle.

Layout (all integers little-endian)::

    offset 0   prelude, 64 bytes: magic b"\\x89LIPMAP\\n", u32 format version, u32 flags (0),
               u64 header offset, u64 header length, then the SHA-256 of the prelude's first
               32 bytes followed by the header
    offset 64  sections, each starting at a multiple of 64 bytes: raw arrays (embeddings,
               poses, ...) and opaque blobs (the serialized FAISS index)
    ...        header: UTF-8 JSON naming every section (dtype, shape, offset, size, and the
               SHA-256 of each 64 MiB chunk) plus the map's metadata; it ends the file

Why this shape:

- The header comes last so that the writer streams arrays and the FAISS index straight to disk
  in one pass, hashing as it goes, without holding a second copy of a gigabyte map in memory.
- The prelude is written last, after everything else, so that a file cut short (a killed
  writer, a full disk) has no magic and can never pass for a map. Writers only ever write to a
  hidden temporary name in the same folder and rename it over the destination when complete
  (:func:`liploc_ros.io_utils.atomic_open`), so an existing map survives a crashed build.
- Arrays are raw, aligned and little-endian, so a reader memory-maps them (``np.memmap``): a
  million-entry map costs page cache, not a private copy.
- Checksums are per 64 MiB chunk so that verification runs on all cores (hashlib releases the
  GIL) and reads the file through a small buffer instead of mapping it all into the process.
  SHA-256 runs at about 1.2 GB/s a core on this hardware (SHA-NI), faster than BLAKE2b here.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from liploc_ros.errors import MapError
from liploc_ros.io_utils import atomic_open

#: The newest container version this code writes and reads. 2 added the per-entry arrays
#: heading_deg and keyframe (see liploc_ros.mapdb.entries); 3 the optional score
#: calibration in the header (liploc_ros.localization.calibration). Versions 1 and 2 still
#: load (without a calibration).
MAP_FORMAT_VERSION = 3

MAGIC = b"\x89LIPMAP\n"
_PRELUDE = struct.Struct("<8sIIQQ32s")
_PRELUDE_HEAD = struct.Struct("<8sIIQQ")
PRELUDE_BYTES = _PRELUDE.size  # 64
ALIGN = 64
CHUNK_BYTES = 64 << 20
_IO_PIECE = 8 << 20
_READ_PIECE = 4 << 20
#: Largest header accepted on read: the header of a 1M-entry map is a few kB.
_MAX_HEADER_BYTES = 64 << 20
#: dtypes a section may hold (little-endian or byte-sized only).
_ALLOWED_DTYPES = {"<f2", "<f4", "<f8", "<i4", "<i8", "|u1"}

#: Test seam, not an API: when set, called with the number of section bytes written so far
#: after each piece is written to the temporary file. The crash-safety test sets it in a
#: subprocess to stop the writer mid-file and SIGKILL it there.
_write_hook: Callable[[int], None] | None = None

#: A blob producer gets ``write(bytes-like)`` and streams its bytes through it.
BlobWriter = Callable[[Callable[[Any], object]], None]


@dataclass(frozen=True)
class Section:
    """Where one array or blob lies in the file, and what it must hash to."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    sha256: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "offset": self.offset,
            "nbytes": self.nbytes,
            "sha256": list(self.sha256),
        }


@dataclass(frozen=True)
class Container:
    """A map file opened and checked, its sections not yet read."""

    path: Path
    version: int
    file_size: int
    meta: dict[str, Any]
    sections: dict[str, Section]


class _HashingSink:
    """Writes a section's bytes, hashing each 64 MiB chunk as it goes."""

    def __init__(self, handle: IO[bytes], written_before: int) -> None:
        self.handle = handle
        self.nbytes = 0
        self.digests: list[str] = []
        self._hasher = hashlib.sha256()
        self._in_chunk = 0
        self._written_before = written_before

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        pos = 0
        while pos < total:
            take = min(total - pos, CHUNK_BYTES - self._in_chunk, _IO_PIECE)
            piece = view[pos : pos + take]
            self.handle.write(piece)
            self._hasher.update(piece)
            self._in_chunk += take
            self.nbytes += take
            pos += take
            if self._in_chunk == CHUNK_BYTES:
                self._close_chunk()
            if _write_hook is not None:
                _write_hook(self._written_before + self.nbytes)
        return total

    def _close_chunk(self) -> None:
        self.digests.append(self._hasher.hexdigest())
        self._hasher = hashlib.sha256()
        self._in_chunk = 0

    def finish(self) -> tuple[str, ...]:
        if self._in_chunk or not self.digests:
            self._close_chunk()
        return tuple(self.digests)


def _le_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _pad(handle: IO[bytes], pos: int) -> int:
    gap = -pos % ALIGN
    if gap:
        handle.write(b"\0" * gap)
    return pos + gap


def write_container(
    path: str | Path,
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    blobs: Mapping[str, BlobWriter] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    version: int = MAP_FORMAT_VERSION,
) -> int:
    """Write ``arrays`` and ``blobs`` with ``meta`` to ``path`` atomically; returns its size.

    ``meta`` must be JSON-serialisable and must not use the key "sections". ``progress`` is
    called with the bytes of each finished section (for a progress bar). ``version`` is the
    format version the prelude states (an older one only to make files as older code did).
    """
    path = Path(path)
    if "sections" in meta:
        raise ValueError("meta may not contain the key 'sections'")
    if not 1 <= version <= MAP_FORMAT_VERSION:
        raise ValueError(f"format version must be 1..{MAP_FORMAT_VERSION}, not {version}")
    sections: dict[str, Section] = {}
    try:
        with atomic_open(path, "wb", fsync=True) as handle:
            handle.write(b"\0" * PRELUDE_BYTES)
            pos = PRELUDE_BYTES
            for name, array in arrays.items():
                dtype = _le_dtype(array.dtype)
                data = np.ascontiguousarray(array, dtype=dtype)
                sink = _HashingSink(handle, pos)
                if data.size:
                    sink.write(data.reshape(-1).view(np.uint8))
                sections[name] = Section(
                    name, dtype.str, tuple(data.shape), pos, sink.nbytes, sink.finish()
                )
                pos = _pad(handle, pos + sink.nbytes)
                if progress is not None:
                    progress(sink.nbytes)
            for name, produce in (blobs or {}).items():
                sink = _HashingSink(handle, pos)
                produce(sink.write)
                sections[name] = Section(
                    name, "|u1", (sink.nbytes,), pos, sink.nbytes, sink.finish()
                )
                pos = _pad(handle, pos + sink.nbytes)
                if progress is not None:
                    progress(sink.nbytes)
            header = json.dumps(
                {**meta, "sections": {n: s.to_json() for n, s in sections.items()}},
                indent=1,
                sort_keys=True,
                allow_nan=False,
            ).encode("utf-8")
            handle.write(header)
            head = _PRELUDE_HEAD.pack(MAGIC, version, 0, pos, len(header))
            handle.flush()
            handle.seek(0)
            handle.write(head + hashlib.sha256(head + header).digest())
            handle.seek(0, os.SEEK_END)
    except OSError as err:
        raise MapError(f"cannot write map file {path}: {err.strerror or err}") from err
    return pos + len(header)


def _fail(path: Path, problem: str) -> MapError:
    return MapError(f"map file {path}: {problem}")


def read_container(path: str | Path, *, verify: bool = True) -> tuple[Container, IO[bytes]]:
    """Open ``path``, check its prelude, header and (``verify``) every section's checksum.

    Returns the container description and the open file, which the caller memory-maps from
    and closes. The header checksum, sizes and layout are always checked (they cost nothing);
    ``verify`` adds the SHA-256 of every byte of every section.
    """
    path = Path(path)
    if not path.exists():
        raise MapError(f"map file {path} does not exist")
    if not path.is_file():
        raise MapError(f"map file {path} is not a regular file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
    except OSError as err:
        raise MapError(f"cannot open map file {path}: {err.strerror or err}") from err
    try:
        container = _check(path, handle, verify)
    except BaseException:
        handle.close()
        raise
    return container, handle


def _check(path: Path, handle: IO[bytes], verify: bool) -> Container:
    size = os.fstat(handle.fileno()).st_size
    prelude = handle.read(PRELUDE_BYTES)
    if len(prelude) < PRELUDE_BYTES:
        raise _fail(path, f"not a liploc map file (only {size} bytes, shorter than a prelude)")
    magic, version, _flags, header_offset, header_len, digest = _PRELUDE.unpack(prelude)
    if magic != MAGIC:
        if magic == b"\0" * len(MAGIC):
            raise _fail(
                path,
                "incomplete map file: its writer never finished (a temporary file left by "
                "an interrupted build?)",
            )
        raise _fail(path, f"not a liploc map file (starts with {magic!r}, expected {MAGIC!r})")
    expected = header_offset + header_len
    if header_len > _MAX_HEADER_BYTES or header_offset < PRELUDE_BYTES:
        raise _fail(path, "corrupt prelude (impossible header position or length)")
    if size < expected:
        raise _fail(
            path,
            f"truncated or corrupt: the prelude says the file has {expected} bytes, it has {size}",
        )
    if size > expected:
        raise _fail(
            path,
            f"corrupt: {size - expected} unexpected bytes after the end of the map "
            f"(expected {expected} bytes, found {size})",
        )
    handle.seek(header_offset)
    header = handle.read(header_len)
    if hashlib.sha256(prelude[: _PRELUDE_HEAD.size] + header).digest() != digest:
        raise _fail(path, "header checksum mismatch: the file is corrupt")
    if version > MAP_FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version} is newer than this liploc_ros reads (up to "
            f"{MAP_FORMAT_VERSION}); upgrade liploc_ros",
        )
    if version < 1:
        raise _fail(path, f"invalid format version {version}")
    try:
        meta = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"header JSON invalid: {err}") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("sections"), dict):
        raise _fail(path, "header JSON invalid: no section table")
    sections = {
        name: _parse_section(path, name, entry, header_offset)
        for name, entry in meta.pop("sections").items()
    }
    if verify:
        _verify_sections(path, handle, list(sections.values()))
    return Container(path, version, size, meta, sections)


def _parse_section(path: Path, name: str, entry: Any, limit: int) -> Section:
    try:
        dtype = str(entry["dtype"])
        shape = tuple(int(v) for v in entry["shape"])
        offset = int(entry["offset"])
        nbytes = int(entry["nbytes"])
        digests = tuple(str(d) for d in entry["sha256"])
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(path, f"header JSON invalid: section {name!r} is malformed ({err})") from err
    if dtype not in _ALLOWED_DTYPES:
        raise _fail(path, f"section {name!r} has unsupported dtype {dtype!r}")
    if any(v < 0 for v in shape):
        raise _fail(path, f"section {name!r} has a negative shape {shape}")
    if int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize != nbytes:
        raise _fail(path, f"section {name!r}: shape {shape} x {dtype} is not {nbytes} bytes")
    if offset < PRELUDE_BYTES or offset % ALIGN or offset + nbytes > limit:
        raise _fail(path, f"section {name!r} lies outside the data area (offset {offset})")
    if len(digests) != max(1, -(-nbytes // CHUNK_BYTES)):
        raise _fail(path, f"section {name!r} has {len(digests)} checksums for {nbytes} bytes")
    return Section(name, dtype, shape, offset, nbytes, digests)


def _hash_range(fd: int, offset: int, nbytes: int) -> str:
    # Positional reads into one small buffer: nothing is mapped into the process, and the
    # file is read through the same descriptor that the arrays are mapped from.
    hasher = hashlib.sha256()
    buffer = memoryview(bytearray(min(_READ_PIECE, max(nbytes, 1))))
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [buffer[: min(len(buffer), nbytes - done)]], offset + done)
        if got <= 0:
            break
        hasher.update(buffer[:got])
        done += got
    return hasher.hexdigest()


def _verify_sections(path: Path, handle: IO[bytes], sections: list[Section]) -> None:
    jobs = []
    for section in sections:
        for i, digest in enumerate(section.sha256):
            start = i * CHUNK_BYTES
            jobs.append((section, start, min(CHUNK_BYTES, section.nbytes - start), digest))
    fd = handle.fileno()
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda j: _hash_range(fd, j[0].offset + j[1], j[2]), jobs))
    for (section, start, length, digest), got in zip(jobs, results, strict=True):
        if got != digest:
            raise _fail(
                path,
                f"checksum mismatch in section {section.name!r} (bytes {start}..{start + length} "
                "of it): the file is corrupt",
            )


def section_array(
    container: Container, handle: IO[bytes], name: str, *, mmap: bool = True
) -> np.ndarray:
    """One section as an array: read-only ``np.memmap`` (``mmap``) or a private copy."""
    section = container.sections.get(name)
    if section is None:
        raise _fail(container.path, f"has no {name!r} section")
    dtype = np.dtype(section.dtype)
    if section.nbytes == 0:
        return np.zeros(section.shape, dtype)
    if mmap:
        return np.memmap(handle, dtype=dtype, mode="r", offset=section.offset, shape=section.shape)
    array = np.empty(section.shape, dtype)
    # ndarray has the buffer protocol; numpy's stubs declare __buffer__ for Python 3.12+ only
    view = memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < section.nbytes:
        got = os.preadv(handle.fileno(), [view[done : done + _IO_PIECE]], section.offset + done)
        if got <= 0:
            raise _fail(container.path, f"section {name!r} is cut short")
        done += got
    return array


def section_reader(container: Container, handle: IO[bytes], name: str) -> Callable[[int], bytes]:
    """A ``read(n) -> bytes`` over one blob section, for streaming decoders (FAISS)."""
    section = container.sections[name]
    fd = handle.fileno()
    state = {"pos": 0}

    def read(n: int) -> bytes:
        n = min(n, section.nbytes - state["pos"])
        if n <= 0:
            return b""
        data = os.pread(fd, n, section.offset + state["pos"])
        state["pos"] += len(data)
        return data

    return read
