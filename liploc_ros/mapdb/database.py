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
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.config import from_dict, to_dict
from liploc_ros.errors import ConfigError, MapError, ModelMismatchError
from liploc_ros.mapdb import entries, fileformat
from liploc_ros.mapdb.indexes import stored
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.mapdb.search import MapSearch, SearchResult

#: what the header's "format" key must say
FORMAT_NAME = "liploc_ros map"
#: |norm - 1| allowed for an orientation quaternion
QUATERNION_TOLERANCE = entries.QUATERNION_TOLERANCE
#: allowed deviation of a pose's rotation block from orthonormal
ROTATION_TOLERANCE = 1e-4
_ARRAYS = entries.ARRAYS


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


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
        heading_deg: np.ndarray | None = None,
        keyframes: np.ndarray | None = None,
    ) -> None:
        """Check and adopt the arrays (no copy where they already have the right dtype).

        embeddings (N, D) float32 or float16 (other floats become float32); positions (N, 3)
        in the map frame; orientations (N, 4) unit quaternions x, y, z, w (scipy's order);
        stamps (N,) seconds; source_index (N,) into ``info.sources`` (default 0); frame_index
        (N,) the frame's index in its source (default -1); heading_deg (N,) where the entry's
        crop faces, degrees in [0, 360) (default 0: forward); keyframes (N,) ids >= 0 shared
        by the entries of one scan, one per heading (default: one keyframe per entry).
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
            "heading_deg": np.ascontiguousarray(
                entries.default_array("heading_deg", n) if heading_deg is None else heading_deg,
                dtype=np.float32,
            ),
            "keyframe": entries.default_array("keyframe", n)
            if keyframes is None
            else entries.integer_array(keyframes, "keyframes", np.int64),
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
            "heading_deg": (n,),
            "keyframe": (n,),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise MapError(
                    f"{prefix}array shapes inconsistent: {name} has shape "
                    f"{arrays[name].shape}, expected {shape} for {n} entries"
                )
        entries.check_headings(arrays["heading_deg"], prefix)
        entries.check_keyframes(arrays["keyframe"], prefix)
        self._arrays = {name: _readonly(arrays[name]) for name in _ARRAYS}
        self._info = info
        self._path: Path | None = None
        self._search = MapSearch(self._arrays["embeddings"], info.model_name)
        self._format_version: int | None = None
        self._calibration: dict[str, Any] | None = None

    def _check_values(self) -> None:
        """Value checks over every entry (construction only: a loaded map is checksummed)."""
        entries.check_values(self._arrays, self._info.sources)

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
        finite = entries.finite_rows(poses)
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

    def subset(self, keep: np.ndarray) -> MapDatabase:
        """The entries where ``keep`` (N,) is true, as a new in-memory map (exact index;
        keyframe ids renumbered; the calibration is not carried over: it describes this
        map, not a part of it)."""
        mask = np.asarray(keep, bool).reshape(-1)
        if mask.shape != (len(self),):
            raise MapError(f"subset: {mask.shape[0]} flags for {len(self)} entries")
        a = self._arrays
        return MapDatabase(
            np.asarray(a["embeddings"])[mask], a["positions"][mask], a["orientations"][mask],
            a["stamps"][mask], self._info, source_index=a["source_index"][mask],
            frame_index=a["frame_index"][mask], heading_deg=a["heading_deg"][mask],
            keyframes=np.unique(a["keyframe"][mask], return_inverse=True)[1],
        )  # fmt: skip

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
    def calibration(self) -> dict[str, Any] | None:
        """The score calibration stored with the map, as its header holds it (None: none;
        :func:`liploc_ros.localization.calibration.map_calibration` reads it)."""
        return None if self._calibration is None else dict(self._calibration)

    def set_calibration(self, data: Mapping[str, Any] | None) -> None:
        """Attach a score calibration (a JSON-able mapping; None removes it). Saved with the
        map from the next :meth:`save` on."""
        if data is not None and not isinstance(data, Mapping):
            raise MapError(f"calibration must be a mapping, not {type(data).__name__}")
        self._calibration = None if data is None else json.loads(json.dumps(dict(data)))

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
    def heading_deg(self) -> np.ndarray:
        """(N,) float32: where each entry's crop faces (degrees, CCW from the LiDAR's x)."""
        return self._arrays["heading_deg"]

    @property
    def keyframes(self) -> np.ndarray:
        """(N,) int64: the keyframe (mapped scan) of each entry; one entry per heading."""
        return self._arrays["keyframe"]

    @property
    def headings(self) -> tuple[float, ...]:
        """The distinct crop headings of the map, ascending ((0.0,): forward crops only)."""
        return tuple(float(h) for h in np.unique(np.asarray(self.heading_deg)))

    @property
    def keyframe_count(self) -> int:
        """How many keyframes (mapped scans) the entries come from."""
        return int(np.unique(np.asarray(self.keyframes)).size)

    @property
    def entries_per_keyframe(self) -> int:
        """The most entries one keyframe holds (its crop headings; 0 for an empty map): they
        share a position, so a search for k places needs this many times k entries."""
        if len(self) == 0:
            return 0
        return int(np.unique(np.asarray(self.keyframes), return_counts=True)[1].max())

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
        """The index kind :meth:`search` uses: "flat" (exact) or an approximate one."""
        return self._search.index.name

    @property
    def index_params(self) -> Any:
        """The index kind's parameters (a frozen dataclass; ``.kind`` names the kind)."""
        return self._search.index.params

    # ---------------------------------------------------------------------------- search

    def build_index(self, kind: str = "auto", **options: Any) -> Any:
        """Build (or drop, for "flat") the index used by :meth:`search`; returns its params.

        ``options`` are the keywords of the kind's ``build`` (for the approximate kinds:
        target_recall, rerank, seed, progress, ...; see :mod:`liploc_ros.mapdb.indexes`).
        """
        return self._search.build(kind, **options).params

    def set_search_params(self, **overrides: int | None) -> None:
        """Override stored search-time parameters (the kind's ``search_params``, e.g.
        nprobe, rerank: recall against speed). None keeps the stored value."""
        self._search.set_search_params(**overrides)

    def enable_gpu(self, device: int = 0) -> None:
        """Search on GPU ``device`` with faiss-gpu; DeviceError when FAISS sees no GPU."""
        self._search.index.to_gpu(device)

    def search(self, queries: np.ndarray, k: int = 5, *, exact: bool = False) -> SearchResult:
        """The ``k`` entries with the highest inner product with each query, best first.

        ``queries`` is (Q, D) or (D,). The approximate index is used when the map has one,
        unless ``exact``; either way the scores returned are exact inner products.
        """
        scores, ids = self._search.search(queries, k, exact=exact)
        return SearchResult(indices=ids, scores=scores, poses=self.poses_at(ids))

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

        ``index``: "auto" (exact below ~200k entries, IVF above) or a kind of
        :mod:`liploc_ros.mapdb.indexes.registry`; ``index_options`` are its build settings.
        An index of the right kind already built (or loaded) is reused, not rebuilt.
        """
        from liploc_ros import __version__

        path = Path(path)
        search_index = self._search.for_save(index, index_options, progress)
        info = dataclasses.replace(
            self._info,
            created=self._info.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            liploc_ros_version=self._info.liploc_ros_version or __version__,
        )
        meta = {
            "format": FORMAT_NAME,
            "entries": len(self),
            "info": to_dict(info),
            "index": search_index.header(),
        }
        if self._calibration is not None:
            meta["calibration"] = self._calibration
        fileformat.write_container(path, meta, self._arrays, stored.blobs(search_index))
        self._info, self._search.index, self._path = info, search_index, path
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
                index_kind, params = stored.parse_header(path, meta.get("index"))
            except ConfigError as err:
                raise MapError(f"map file {path}: invalid header: {err}") from err
            arrays = entries.read_arrays(container, handle, mmap=mmap)
            if meta.get("entries") != arrays["embeddings"].shape[0]:
                raise MapError(
                    f"map file {path}: array shapes inconsistent: the header says "
                    f"{meta.get('entries')} entries, the embeddings have "
                    f"{arrays['embeddings'].shape[0]}"
                )
            db = cls.__new__(cls)
            db._adopt(arrays, info, where=str(path))
            db._search.index = stored.open_index(
                path, container, handle, index_kind, params, db._search.exact
            )
        db._path = path
        db._format_version = container.version
        calibration = meta.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise MapError(f"map file {path}: invalid header: calibration is not a mapping")
        db._calibration = calibration
        if gpu:
            db.enable_gpu()
        return db
