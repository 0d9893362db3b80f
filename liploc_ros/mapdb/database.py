"""The LiDAR map a camera is localized in: embeddings with their poses, searched by FAISS.

A :class:`MapDatabase` holds one entry per mapped LiDAR scan: its embedding, the scan's pose in
the map frame, its stamp and where it came from, plus the :class:`MapInfo` that says which
model and preprocessing made the embeddings. Maps are saved to one file (see
:mod:`liploc_ros.mapdb.fileformat`) together with their approximate index, written
atomically, and loaded memory-mapped so that a million-entry map costs page cache, not a
second copy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.config import from_dict, to_dict
from liploc_ros.errors import ConfigError, MapError, ModelMismatchError
from liploc_ros.mapdb import fileformat
from liploc_ros.mapdb.index import (
    ApproxIndex,
    ExactSearcher,
    IndexParams,
    build_approx_index,
    resolve_kind,
)
from liploc_ros.mapdb.info import MapInfo

#: what the header's "format" key must say
FORMAT_NAME = "liploc_ros map"
#: |norm - 1| allowed for an orientation quaternion
QUATERNION_TOLERANCE = 1e-5
#: allowed deviation of a pose's rotation block from orthonormal
ROTATION_TOLERANCE = 1e-4
_CHECK_ROWS = 1 << 16
_ARRAYS = ("embeddings", "positions", "orientations", "stamps", "source_index", "frame_index")


@dataclass(frozen=True)
class SearchResult:
    """The k best map entries per query, best first."""

    #: (Q, k) int64 entry indices; -1 where the map has fewer than k entries
    indices: np.ndarray
    #: (Q, k) float32 exact inner products; -inf where there is no entry
    scores: np.ndarray
    #: (Q, k, 4, 4) float64 entry poses ``T_map_lidar``; NaN where there is no entry
    poses: np.ndarray | None = None


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _first_bad_row(check: Any, array: np.ndarray) -> int | None:
    """Index of the first row failing ``check`` (row-wise bool), scanning in blocks."""
    for start in range(0, array.shape[0], _CHECK_ROWS):
        ok = check(np.asarray(array[start : start + _CHECK_ROWS]))
        if not ok.all():
            return start + int(np.flatnonzero(~ok)[0])
    return None


def _finite_rows(block: np.ndarray) -> np.ndarray:
    return np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)


class MapDatabase:
    """LiDAR embeddings with poses; exact or approximate inner-product search (FAISS)."""

    def __init__(
        self,
        embeddings: np.ndarray,
        positions: np.ndarray,
        orientations: np.ndarray,
        stamps: np.ndarray,
        info: MapInfo,
        *,
        source_index: np.ndarray | None = None,
        frame_index: np.ndarray | None = None,
    ) -> None:
        """Check and adopt the arrays (no copy where they already have the right dtype).

        embeddings (N, D) float32 or float16 (other floats become float32); positions (N, 3)
        in the map frame; orientations (N, 4) unit quaternions x, y, z, w (scipy's order);
        stamps (N,) seconds; source_index (N,) into ``info.sources`` (default 0); frame_index
        (N,) the frame's index in its source (default -1).
        """
        if not isinstance(info, MapInfo):
            raise MapError(f"info must be a MapInfo, not {type(info).__name__}")
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2:
            raise MapError(f"embeddings must be (N, D), got shape {embeddings.shape}")
        if embeddings.dtype not in (np.float16, np.float32):
            if not np.issubdtype(embeddings.dtype, np.floating):
                raise MapError(f"embeddings must be float32 or float16, not {embeddings.dtype}")
            embeddings = embeddings.astype(np.float32)
        n = embeddings.shape[0]
        arrays = {
            "embeddings": np.ascontiguousarray(embeddings),
            "positions": np.ascontiguousarray(positions, dtype=np.float64),
            "orientations": np.ascontiguousarray(orientations, dtype=np.float64),
            "stamps": np.ascontiguousarray(stamps, dtype=np.float64),
            "source_index": np.ascontiguousarray(
                np.zeros(n, np.int32) if source_index is None else source_index, dtype=np.int32
            ),
            "frame_index": np.ascontiguousarray(
                np.full(n, -1, np.int64) if frame_index is None else frame_index, dtype=np.int64
            ),
        }
        if source_index is not None and not np.array_equal(
            np.asarray(source_index), arrays["source_index"]
        ):
            raise MapError("source_index must hold integers")
        self._adopt(arrays, info, where="")
        self._check_values()

    # ---------------------------------------------------------------- construction helpers

    def _adopt(self, arrays: dict[str, np.ndarray], info: MapInfo, where: str) -> None:
        """Shape checks (cheap, also on load) and attribute set-up."""
        prefix = f"map file {where}: " if where else ""
        emb = arrays["embeddings"]
        n = emb.shape[0]
        if emb.shape[1] != info.embed_dim:
            raise MapError(
                f"{prefix}embeddings are {emb.shape[1]}-d but MapInfo.embed_dim is "
                f"{info.embed_dim}"
            )
        expected = {
            "positions": (n, 3),
            "orientations": (n, 4),
            "stamps": (n,),
            "source_index": (n,),
            "frame_index": (n,),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise MapError(
                    f"{prefix}array shapes inconsistent: {name} has shape "
                    f"{arrays[name].shape}, expected {shape} for {n} entries"
                )
        self._arrays = {name: _readonly(arrays[name]) for name in _ARRAYS}
        self._info = info
        self._path: Path | None = None
        self._exact = ExactSearcher(self._arrays["embeddings"])
        self._approx: ApproxIndex | None = None
        self._format_version: int | None = None

    def _check_values(self) -> None:
        """Value checks over every entry (construction only: a loaded map is checksummed)."""
        a = self._arrays
        bad = _first_bad_row(_finite_rows, a["embeddings"])
        if bad is not None:
            raise MapError(f"embedding of entry {bad} contains NaN or inf")
        for name in ("positions", "orientations", "stamps"):
            bad = _first_bad_row(_finite_rows, a[name])
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
        n_sources = max(1, len(self._info.sources))
        src = a["source_index"]
        if src.size and (src.min() < 0 or src.max() >= n_sources):
            i = int(np.flatnonzero((src < 0) | (src >= n_sources))[0])
            raise MapError(
                f"source_index of entry {i} is {src[i]}, but the map names {n_sources} "
                f"source(s): {list(self._info.sources)}"
            )

    @classmethod
    def from_poses(
        cls,
        embeddings: np.ndarray,
        poses_4x4: np.ndarray,
        stamps: np.ndarray,
        info: MapInfo,
        **kw: Any,
    ) -> MapDatabase:
        """A map from 4 x 4 poses ``T_map_lidar`` (checked to be rigid transforms)."""
        from scipy.spatial.transform import Rotation

        poses = np.asarray(poses_4x4, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4):
            raise MapError(f"poses must be (N, 4, 4), got shape {poses.shape}")
        finite = _finite_rows(poses)
        if not finite.all():
            raise MapError(f"pose of entry {int(np.flatnonzero(~finite)[0])} is not finite")
        rot = poses[:, :3, :3]
        gram = np.einsum("nji,njk->nik", rot, rot) - np.eye(3)
        rigid = (
            (np.abs(gram).reshape(len(poses), -1).max(axis=1, initial=0) < ROTATION_TOLERANCE)
            & (np.linalg.det(rot) > 0)
            & (np.abs(poses[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1, initial=0) < 1e-9)
        )
        if not rigid.all():
            i = int(np.flatnonzero(~rigid)[0])
            raise MapError(f"pose of entry {i} is not a rigid transform:\n{poses[i]}")
        quats = Rotation.from_matrix(rot).as_quat() if len(poses) else np.zeros((0, 4))
        return cls(embeddings, poses[:, :3, 3], quats, stamps, info, **kw)

    # ------------------------------------------------------------------------- accessors

    def __len__(self) -> int:
        return int(self._arrays["embeddings"].shape[0])

    def __repr__(self) -> str:
        where = f" from {self._path}" if self._path else ""
        return (
            f"MapDatabase({len(self)} entries, {self.dim}-d {self.dtype}, "
            f"model {self._info.model_name} {self._info.model_fingerprint}, "
            f"index {self.index_kind}{where})"
        )

    @property
    def info(self) -> MapInfo:
        return self._info

    @property
    def path(self) -> Path | None:
        """The file this map was loaded from or last saved to (None: in memory only)."""
        return self._path

    @property
    def format_version(self) -> int | None:
        """The file format version it was loaded from or saved as (None: never on disk)."""
        return self._format_version

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) read-only; an ``np.memmap`` when loaded with ``mmap=True``."""
        return self._arrays["embeddings"]

    @property
    def positions(self) -> np.ndarray:
        return self._arrays["positions"]

    @property
    def orientations(self) -> np.ndarray:
        return self._arrays["orientations"]

    @property
    def stamps(self) -> np.ndarray:
        return self._arrays["stamps"]

    @property
    def source_index(self) -> np.ndarray:
        return self._arrays["source_index"]

    @property
    def frame_index(self) -> np.ndarray:
        return self._arrays["frame_index"]

    @property
    def dim(self) -> int:
        return int(self._arrays["embeddings"].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self._arrays["embeddings"].dtype

    @property
    def poses(self) -> np.ndarray:
        """(N, 4, 4) float64 ``T_map_lidar`` of every entry (computed on each call)."""
        return self.poses_at(np.arange(len(self)))

    def poses_at(self, indices: np.ndarray) -> np.ndarray:
        """Poses of ``indices`` (any shape) as (..., 4, 4); NaN where an index is -1."""
        from scipy.spatial.transform import Rotation

        idx = np.asarray(indices, dtype=np.int64)
        flat = idx.reshape(-1)
        valid = np.flatnonzero(flat >= 0)
        out = np.full((flat.size, 4, 4), np.nan)
        if valid.size:
            rows = flat[valid]
            out[valid, :3, :3] = Rotation.from_quat(self.orientations[rows]).as_matrix()
            out[valid, :3, 3] = self.positions[rows]
            out[valid, 3, :] = (0.0, 0.0, 0.0, 1.0)
        return out.reshape((*idx.shape, 4, 4))

    @property
    def index_kind(self) -> str:
        """ "flat" (exact search only), "ivf" or "hnsw"."""
        return self._approx.kind if self._approx is not None else "flat"

    @property
    def index_params(self) -> IndexParams:
        return self._approx.params if self._approx is not None else IndexParams()

    # ---------------------------------------------------------------------------- search

    def build_index(self, kind: str = "auto", **options: Any) -> IndexParams:
        """Build (or drop, for "flat") the approximate index used by :meth:`search`.

        ``options`` go to :func:`liploc_ros.mapdb.index.build_approx_index` (nlist, hnsw_m,
        target_recall, rerank, seed, progress, ...).
        """
        concrete = resolve_kind(kind, len(self))
        if concrete == "flat":
            self._approx = None
        else:
            self._approx = build_approx_index(self.embeddings, concrete, **options)
        return self.index_params

    def set_search_params(
        self, *, nprobe: int | None = None, ef_search: int | None = None, rerank: int | None = None
    ) -> None:
        """Override the stored nprobe / efSearch / rerank depth (recall against speed)."""
        if self._approx is None:
            raise ConfigError("this map has no approximate index (it is searched exactly)")
        self._approx.set_search_params(nprobe=nprobe, ef_search=ef_search, rerank=rerank)

    def enable_gpu(self, device: int = 0) -> None:
        """Search on GPU ``device`` with faiss-gpu; DeviceError when FAISS sees no GPU."""
        if self._approx is not None:
            self._approx.to_gpu(device)
        else:
            self._exact.to_gpu(device)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise MapError(
                f"query embeddings have shape {np.shape(queries)}, but this map holds "
                f"{self.dim}-d embeddings (model {self._info.model_name})"
            )
        if not np.issubdtype(q.dtype, np.floating):
            raise MapError(f"query embeddings must be floating point, not {q.dtype}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise MapError("query embedding contains NaN or inf")
        return q

    def search(self, queries: np.ndarray, k: int = 5, *, exact: bool = False) -> SearchResult:
        """The ``k`` entries with the highest inner product with each query, best first.

        ``queries`` is (Q, D) or (D,). The approximate index is used when the map has one,
        unless ``exact``; either way the scores returned are exact inner products.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}")
        k = int(k)
        q = self._queries(queries)
        if len(self) == 0:
            scores = np.zeros((q.shape[0], 0), np.float32)
            ids = np.zeros((q.shape[0], 0), np.int64)
        elif self._approx is not None and not exact:
            scores, ids = self._approx.search(self.embeddings, q, k)
        else:
            scores, ids = self._exact.search(q, k)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.hstack([ids, np.full((q.shape[0], pad), -1, np.int64)])
            scores = np.hstack([scores, np.full((q.shape[0], pad), -np.inf, np.float32)])
        return SearchResult(
            indices=ids.astype(np.int64, copy=False),
            scores=scores.astype(np.float32, copy=False),
            poses=self.poses_at(ids),
        )

    # ----------------------------------------------------------------------- model check

    def check_model(self, fingerprint: str, model_name: str = "") -> None:
        """Refuse a model other than the one that built this map (ModelMismatchError)."""
        if fingerprint == self._info.model_fingerprint:
            return
        where = f"map {self._path}" if self._path else "this map"
        theirs = f"model {model_name!r} " if model_name else "a model "
        raise ModelMismatchError(
            f"{where} was built with model {self._info.model_name!r} (fingerprint "
            f"{self._info.model_fingerprint}), but {theirs}with fingerprint {fingerprint} "
            "is being used: their embeddings are not comparable. Rebuild the map with this "
            "model (liploc build-map) or run the model the map was built with."
        )

    # -------------------------------------------------------------------------- file I/O

    def save(
        self,
        path: str | Path,
        *,
        index: str = "auto",
        index_options: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> Path:
        """Write the map to ``path`` atomically, with its approximate index when it has one.

        ``index``: "auto" (exact below ~200k entries, IVF above), "flat", "ivf" or "hnsw".
        An index of the right kind already built (or loaded) is reused, not rebuilt.
        """
        from liploc_ros import __version__

        path = Path(path)
        kind = resolve_kind(index, len(self))
        if kind == "flat":
            approx = None
        elif self._approx is not None and self._approx.kind == kind and not index_options:
            approx = self._approx
        else:
            approx = build_approx_index(
                self.embeddings, kind, **{"progress": progress, **(index_options or {})}
            )
        info = dataclasses.replace(
            self._info,
            created=self._info.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            liploc_ros_version=self._info.liploc_ros_version or __version__,
        )
        meta = {
            "format": FORMAT_NAME,
            "entries": len(self),
            "info": to_dict(info),
            "index": to_dict(approx.params if approx is not None else IndexParams()),
        }
        blobs = {"index": approx.write} if approx is not None else None
        fileformat.write_container(path, meta, self._arrays, blobs)
        self._info, self._approx, self._path = info, approx, path
        self._format_version = fileformat.MAP_FORMAT_VERSION
        return path

    @classmethod
    def load(
        cls, path: str | Path, *, mmap: bool = True, verify: bool = True, gpu: bool = False
    ) -> MapDatabase:
        """Open a map file; MapError names the file and what is wrong with it.

        ``mmap`` maps the arrays instead of reading them (a 1M-entry map then costs page
        cache); ``verify`` checks the SHA-256 of every byte (the header and sizes are always
        checked); ``gpu`` searches on the first GPU (DeviceError without faiss-gpu).
        """
        path = Path(path)
        container, handle = fileformat.read_container(path, verify=verify)
        with handle:
            meta = container.meta
            if meta.get("format") != FORMAT_NAME:
                raise MapError(
                    f"map file {path}: not a liploc_ros map (format {meta.get('format')!r})"
                )
            try:
                info = from_dict(MapInfo, meta.get("info"))
                params = from_dict(IndexParams, meta.get("index"))
            except ConfigError as err:
                raise MapError(f"map file {path}: invalid header: {err}") from err
            missing = [name for name in _ARRAYS if name not in container.sections]
            if missing:
                raise MapError(f"map file {path}: missing array(s) {', '.join(missing)}")
            arrays = {
                name: fileformat.section_array(container, handle, name, mmap=mmap)
                for name in _ARRAYS
            }
            wanted = {
                "embeddings": ("<f2", "<f4"),
                "positions": ("<f8",),
                "orientations": ("<f8",),
                "stamps": ("<f8",),
                "source_index": ("<i4",),
                "frame_index": ("<i8",),
            }
            for name, dtypes in wanted.items():
                if arrays[name].dtype.str not in dtypes or (
                    name == "embeddings" and arrays[name].ndim != 2
                ):
                    raise MapError(
                        f"map file {path}: {name} has dtype {arrays[name].dtype} and shape "
                        f"{arrays[name].shape}, expected {' or '.join(dtypes)}"
                    )
            if meta.get("entries") != arrays["embeddings"].shape[0]:
                raise MapError(
                    f"map file {path}: array shapes inconsistent: the header says "
                    f"{meta.get('entries')} entries, the embeddings have "
                    f"{arrays['embeddings'].shape[0]}"
                )
            db = cls.__new__(cls)
            db._adopt(arrays, info, where=str(path))
            if params.kind in ("ivf", "hnsw"):
                db._approx = cls._read_index(path, container, handle, params, db)
            elif params.kind != "flat":
                raise MapError(f"map file {path}: unknown index kind {params.kind!r}")
        db._path = path
        db._format_version = container.version
        if gpu:
            db.enable_gpu()
        return db

    @staticmethod
    def _read_index(
        path: Path,
        container: fileformat.Container,
        handle: Any,
        params: IndexParams,
        db: MapDatabase,
    ) -> ApproxIndex:
        if "index" not in container.sections:
            raise MapError(f"map file {path}: the header names a {params.kind} index, none stored")
        try:
            approx = ApproxIndex.read(
                fileformat.section_reader(container, handle, "index"), params
            )
        except RuntimeError as err:  # FAISS reports a malformed index this way
            raise MapError(
                f"map file {path}: the stored {params.kind} index is invalid: {err}"
            ) from err
        if approx.ntotal != len(db) or int(approx.index.d) != db.dim:
            raise MapError(
                f"map file {path}: array shapes inconsistent: the stored index holds "
                f"{approx.ntotal} x {approx.index.d}, the map {len(db)} x {db.dim}"
            )
        return approx
