"""Nearest neighbours of camera embeddings among a map's LiDAR embeddings, by inner product.

Retrieval is by raw dot product (the authors' main variants do not normalise), so every index
here uses FAISS's METRIC_INNER_PRODUCT. Three kinds:

- ``flat``: exact. A float32 map is scanned straight from its memory map (no copy): a few
  queries by FAISS's brute force on one core (OpenMP and BLAS threads cost more than they
  save for one query, and far more when other processes keep the cores busy), a batch in
  blocks with BLAS matrix products. The top k are deterministic: the best score first, the
  lower entry index first among equal scores (FAISS alone keeps an arbitrary one of equal
  scores). A float16 map is scanned by a FAISS float16 scalar-quantizer index (its codes are
  the map's bytes, decoded exactly), and its candidates re-scored as below.
- ``ivf``: inverted lists over spherical k-means centroids with 8-bit scalar-quantized codes
  (a quarter of float32: a 1M x 256 map's index is about 260 MB, not another gigabyte).
- ``hnsw``: a HNSW graph over the same 8-bit codes.

The approximate kinds only propose candidates (``rerank`` of them, 32 by default); each
candidate is re-scored exactly against the map's own embeddings and the best k are kept, so
the scores returned are always exact inner products and only recall is approximate. ``nprobe``
/ ``efSearch`` are tuned at build time to reach a target top-1 recall against exact search on
held-out entries of the map itself (noisy copies), and stored with the index.

FAISS is imported lazily, only when an index is built, loaded or searched.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError, DeviceError, MapError

LOG = logging.getLogger(__name__)

INDEX_KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw")
#: "auto" builds an approximate (IVF) index from this many entries on; below, exact search is
#: fast enough (about 1 ms per 20k float32 entries at one query; see bench/bench_search.py).
AUTO_APPROX_MIN_ENTRIES = 200_000
#: candidates an approximate index proposes per query for exact re-scoring
DEFAULT_RERANK = 32
#: top-1 recall against exact search that the build-time tuning aims for
DEFAULT_TARGET_RECALL = 0.97
#: held-out entries used as tuning queries
DEFAULT_TUNING_QUERIES = 1000
#: noise added to the tuning queries, relative to the embeddings' per-dimension spread
DEFAULT_TUNING_NOISE = 1.0
#: below this many queries a search runs on one thread (OpenMP start-up dominates)
_SINGLE_THREAD_BELOW = 8
_BLOCK_ELEMENTS = 1 << 24
_SCAN_BLOCK_ROWS = 1 << 16
_SPARE_CANDIDATES = 8
_ADD_CHUNK = 1 << 16


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss is a hard dependency
        raise MapError(
            "FAISS is not installed: pip install faiss-cpu (or faiss-gpu) to search maps"
        ) from err
    return faiss


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    """Run FAISS with ``count`` OpenMP threads inside the block (a process-wide setting)."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, count))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def threads_for(num_queries: int) -> int:
    """One thread for a handful of queries (the localizer's case), every core for batches."""
    return 1 if num_queries < _SINGLE_THREAD_BELOW else (os.cpu_count() or 1)


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    faiss = _faiss()
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def require_gpu(device: int = 0) -> Any:
    """FAISS GPU resources for ``device``, or a DeviceError that says why there are none."""
    faiss = _faiss()
    count = gpu_count()
    if count == 0 or not hasattr(faiss, "StandardGpuResources"):
        raise DeviceError(
            "GPU map search asked for, but FAISS sees no GPU (faiss.get_num_gpus() == 0; "
            "faiss-cpu is installed or CUDA is unavailable): install faiss-gpu on a CUDA "
            "machine, or search on the CPU"
        )
    if not 0 <= device < count:
        raise DeviceError(f"GPU {device} asked for map search, but FAISS sees {count} GPU(s)")
    return faiss.StandardGpuResources()


@dataclass(frozen=True)
class IndexParams:
    """How an index was built and is searched; stored in the map header."""

    kind: str = "flat"
    #: IVF: inverted lists, and how many are scanned per query
    nlist: int = 0
    nprobe: int = 0
    #: HNSW: links per node, construction and search beam widths
    hnsw_m: int = 0
    ef_construction: int = 0
    ef_search: int = 0
    #: candidates re-scored exactly per query (at least k)
    rerank: int = DEFAULT_RERANK
    #: top-1 recall against exact search measured on held-out entries at build (-1: none)
    tuned_recall: float = -1.0
    tuning_queries: int = 0
    tuning_noise: float = 0.0
    #: entries used to train the k-means centroids / scalar quantizer
    train_size: int = 0


def resolve_kind(kind: str, num_entries: int) -> str:
    """The concrete index kind ("flat", "ivf" or "hnsw") for ``kind`` on a map this size."""
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown map index {kind!r}; use one of {', '.join(INDEX_KINDS)}")
    if kind == "auto":
        return "ivf" if num_entries >= AUTO_APPROX_MIN_ENTRIES else "flat"
    return kind


def default_nlist(num_entries: int) -> int:
    """About 2 sqrt(N) lists, but at least 39 training points per list (FAISS's minimum)
    once the tuning queries are held out.

    Fewer lists than the usual 4 sqrt(N) because k-means training and assignment cost grows
    with N x nlist and this runs on small machines; at one query, scanning the centroids
    (nlist x D floats) costs as much as scanning the probed lists, so 2 sqrt(N) also searches
    as fast (bench/bench_search.py).
    """
    return int(max(1, min(round(2 * math.sqrt(num_entries)), num_entries // 50)))


# --------------------------------------------------------------------------------------------
# exact search


def _as_float32(block: np.ndarray) -> np.ndarray:
    return np.asarray(block, dtype=np.float32)


def _order_rows(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score, best first, lower id first among equal scores."""
    order = np.lexsort((ids, -values), axis=-1)
    rows = np.arange(values.shape[0])[:, None]
    return values[rows, order], ids[rows, order]


def _select_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, deterministic among ties (lower column wins)."""
    _rows, cols = scores.shape
    if k >= cols:
        ids = np.broadcast_to(np.arange(cols, dtype=np.int64), scores.shape)
        return _order_rows(scores, ids)
    part = np.argpartition(scores, cols - k, axis=1)[:, cols - k :]
    vals = np.take_along_axis(scores, part, 1)
    kth = vals.min(axis=1, keepdims=True)
    # argpartition picks arbitrarily among scores equal to the k-th best; redo those rows.
    ambiguous = (scores == kth).sum(axis=1) > (vals == kth).sum(axis=1)
    for r in np.flatnonzero(ambiguous):
        above = np.flatnonzero(scores[r] > kth[r, 0])
        ties = np.flatnonzero(scores[r] == kth[r, 0])[: k - above.size]
        part[r] = np.concatenate([above, ties])
    vals = np.take_along_axis(scores, part, 1)
    return _order_rows(vals, part.astype(np.int64))


def _merge(
    best: tuple[np.ndarray, np.ndarray] | None, new: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    if best is None:
        return new
    values, ids = _order_rows(np.hstack([best[0], new[0]]), np.hstack([best[1], new[1]]))
    return values[:, :k], ids[:, :k]


def _scan_one(embeddings: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One query on one core: FAISS's SIMD inner products, block by block, into a buffer
    that stays in cache; no OpenMP or BLAS threads to wake (they cost more than they save for
    a single query, and far more when other processes keep the cores busy)."""
    faiss = _faiss()
    n, d = embeddings.shape
    block = min(n, _SCAN_BLOCK_ROWS)
    scores = np.empty(block, np.float32)
    q_ptr = faiss.swig_ptr(query)
    best = None
    for start in range(0, n, block):
        rows = np.ascontiguousarray(embeddings[start : start + block])
        m = rows.shape[0]
        faiss.fvec_inner_products_ny(faiss.swig_ptr(scores), q_ptr, faiss.swig_ptr(rows), d, m)
        values, ids = _select_top_k(scores[None, :m], k)
        best = _merge(best, (values, ids + start), k)
    assert best is not None
    return best


def _search_few(embeddings: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A few queries, one core: FAISS's brute-force top-k (a heap during the scan, no second
    pass), asking for some spare candidates. When the last spare scores strictly below the
    k-th best, every entry tied with the k-th best is among the candidates, so sorting them
    by (score, index) gives the deterministic answer; otherwise (many exact ties) rescan."""
    faiss = _faiss()
    n = embeddings.shape[0]
    kc = min(n, k + _SPARE_CANDIDATES)
    with faiss_threads(1):
        values, ids = faiss.knn(q, embeddings, kc, metric=faiss.METRIC_INNER_PRODUCT)
    values, ids = _order_rows(values, ids)
    for r in np.flatnonzero(values[:, k - 1] <= values[:, kc - 1]) if kc < n else ():
        values[r, :k], ids[r, :k] = (a[0] for a in _scan_one(embeddings, q[r], k))
    return values[:, :k], ids[:, :k]


def exact_search(
    embeddings: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores (Q, min(k, N)) float32, ids int64), best first.

    Scans ``embeddings`` (float32 or float16, memory-mapped or not) in blocks, so the extra
    memory is a block of scores, not a copy of the map. A few float32 queries are scanned on
    one core (:func:`_search_few`); batches go through BLAS matrix products. float16
    blocks are converted on the fly (slow: see :class:`ExactSearcher` for the fast float16
    path).
    """
    n = embeddings.shape[0]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, n)
    if k == 0:
        return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
    if embeddings.dtype == np.float32 and q.shape[0] < _SINGLE_THREAD_BELOW:
        return _search_few(embeddings, q, k)
    block = int(min(n, max(4096, _BLOCK_ELEMENTS // max(1, q.shape[0]))))
    best = None
    for start in range(0, n, block):
        rows = _as_float32(embeddings[start : start + block])
        scores = (rows @ q.T).T
        values, ids = _select_top_k(scores, k)
        best = _merge(best, (values, ids + start), k)
    assert best is not None
    return best


def rescore(
    embeddings: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of candidate entries (-1 = none) and the best k of them, best first."""
    nq, _kc = candidates.shape
    if candidates.size == 0:
        return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
    valid = candidates >= 0
    safe = np.where(valid, candidates, 0)
    # Read each wanted row once, in file order (a memory-mapped map pages in only these rows).
    unique, inverse = np.unique(safe, return_inverse=True)
    gathered = _as_float32(embeddings[unique])[inverse.reshape(safe.shape)]  # (Q, kc, D)
    scores = np.matmul(gathered, queries[:, :, None])[:, :, 0]
    scores[~valid] = -np.inf
    ids = np.where(valid, candidates, np.iinfo(np.int64).max)
    values, ids = _order_rows(scores, ids)
    values, ids = values[:, :k], ids[:, :k]
    ids = np.where(np.isneginf(values), -1, ids)
    return values.astype(np.float32, copy=False), ids


class ExactSearcher:
    """Exact search over a map's embeddings: float32 scans (:func:`exact_search`), a FAISS
    float16 index built on first use for float16 maps, or FAISS on a GPU."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings
        self._fp16_index: Any = None
        self._gpu_index: Any = None
        self._gpu_resources: Any = None

    @property
    def on_gpu(self) -> bool:
        return self._gpu_index is not None

    def to_gpu(self, device: int = 0) -> None:
        """Copy the embeddings to GPU memory (float16 maps stay float16 there)."""
        faiss = _faiss()
        resources = require_gpu(device)
        config = faiss.GpuIndexFlatConfig()
        config.device = device
        config.useFloat16 = self.embeddings.dtype == np.float16
        index = faiss.GpuIndexFlat(
            resources, self.embeddings.shape[1], faiss.METRIC_INNER_PRODUCT, config
        )
        for start in range(0, self.embeddings.shape[0], _ADD_CHUNK):
            index.add(_as_float32(self.embeddings[start : start + _ADD_CHUNK]))
        self._gpu_resources, self._gpu_index = resources, index

    def _fp16(self) -> Any:
        if self._fp16_index is None:
            faiss = _faiss()
            n, d = self.embeddings.shape
            index = faiss.IndexScalarQuantizer(
                d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            # The fp16 scalar quantizer's code is the IEEE half itself: copy, do not convert.
            for start in range(0, n, _ADD_CHUNK):
                block = np.ascontiguousarray(self.embeddings[start : start + _ADD_CHUNK])
                index.add_sa_codes(block.view(np.uint8).reshape(block.shape[0], 2 * d))
            self._fp16_index = index
        return self._fp16_index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.embeddings.shape[0]
        if self._gpu_index is None and self.embeddings.dtype == np.float32:
            return exact_search(self.embeddings, queries, k)
        index = self._gpu_index if self._gpu_index is not None else self._fp16()
        kc = min(n, max(2 * k, k + 16))
        with faiss_threads(threads_for(queries.shape[0])):
            _, candidates = index.search(queries, kc)
        return rescore(self.embeddings, queries, candidates, k)


# --------------------------------------------------------------------------------------------
# approximate search


class ApproxIndex:
    """A FAISS IVF or HNSW index over 8-bit codes that proposes candidates for re-scoring."""

    def __init__(self, index: Any, params: IndexParams) -> None:
        self.index = index
        self.params = params
        self._search_index = index
        self._gpu_resources: Any = None
        self._apply_params()

    @property
    def kind(self) -> str:
        return self.params.kind

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _apply_params(self) -> None:
        faiss = _faiss()
        if self.kind == "ivf":
            if self._gpu_resources is not None:
                faiss.GpuParameterSpace().set_index_parameter(
                    self._search_index, "nprobe", self.params.nprobe
                )
            else:
                self.index.nprobe = self.params.nprobe
        elif self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.params.ef_search, self.params.rerank)

    def set_search_params(
        self, *, nprobe: int | None = None, ef_search: int | None = None, rerank: int | None = None
    ) -> None:
        """Trade speed for recall after loading (None keeps the stored value)."""
        changes: dict[str, int] = {}
        if nprobe is not None:
            if not 1 <= nprobe <= max(1, self.params.nlist):
                raise ConfigError(f"nprobe must be in 1..{self.params.nlist}, not {nprobe}")
            changes["nprobe"] = int(nprobe)
        if ef_search is not None:
            if ef_search < 1:
                raise ConfigError(f"ef_search must be positive, not {ef_search}")
            changes["ef_search"] = int(ef_search)
        if rerank is not None:
            if rerank < 1:
                raise ConfigError(f"rerank must be positive, not {rerank}")
            changes["rerank"] = int(rerank)
        self.params = replace(self.params, **changes)
        self._apply_params()

    def to_gpu(self, device: int = 0) -> None:
        if self.kind == "hnsw":
            raise DeviceError("FAISS has no GPU HNSW index; use an ivf or flat map on the GPU")
        faiss = _faiss()
        resources = require_gpu(device)
        self._search_index = faiss.index_cpu_to_gpu(resources, device, self.index)
        self._gpu_resources = resources
        self._apply_params()

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        kc = min(self.ntotal, max(k, self.params.rerank))
        with faiss_threads(threads_for(queries.shape[0])):
            _, ids = self._search_index.search(queries, kc)
        return ids

    def search(
        self, embeddings: np.ndarray, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return rescore(embeddings, queries, self.candidates(queries, k), k)

    def write(self, write: Callable[[Any], Any]) -> None:
        """Stream the serialized index through ``write(bytes)`` (no in-memory copy)."""
        faiss = _faiss()

        def sink(data: bytes) -> int:
            write(data)
            return len(data)

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(sink))

    @classmethod
    def read(cls, read: Callable[[int], bytes], params: IndexParams) -> ApproxIndex:
        faiss = _faiss()
        index = faiss.read_index(faiss.PyCallbackIOReader(read))
        return cls(index, params)


def _training_rows(embeddings: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(_as_float32(embeddings[np.sort(ids)]))


def _tuning_queries(
    embeddings: np.ndarray, ids: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    rows = _training_rows(embeddings, ids)
    spread = rows.std(axis=0, keepdims=True) if rows.shape[0] > 1 else 1.0
    return (rows + noise * spread * rng.standard_normal(rows.shape)).astype(np.float32)


def _recall_at_1(found: np.ndarray, scores: np.ndarray, truth: np.ndarray, best: np.ndarray):
    """Top-1 hits; a different entry with the exact best score (a tie) counts as a hit."""
    return float(np.mean((found[:, 0] == truth[:, 0]) | (scores[:, 0] >= best[:, 0])))


def build_approx_index(
    embeddings: np.ndarray,
    kind: str,
    *,
    nlist: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    rerank: int = DEFAULT_RERANK,
    target_recall: float = DEFAULT_TARGET_RECALL,
    tuning_queries: int = DEFAULT_TUNING_QUERIES,
    tuning_noise: float = DEFAULT_TUNING_NOISE,
    train_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ApproxIndex:
    """Build an IVF or HNSW index over ``embeddings`` and tune it to ``target_recall``."""
    from tqdm import tqdm

    faiss = _faiss()
    if kind not in ("ivf", "hnsw"):
        raise ConfigError(f"approximate index kind must be 'ivf' or 'hnsw', not {kind!r}")
    n, d = embeddings.shape
    if n == 0:
        raise MapError("cannot build an approximate index over an empty map")
    if not 0.0 < target_recall <= 1.0:
        raise ConfigError(f"target_recall must be in (0, 1], not {target_recall}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_tune = int(min(tuning_queries, max(1, n // 10)))
    tune_ids, pool = perm[:n_tune], perm[n_tune:] if n > n_tune else perm

    if kind == "ivf":
        nlist = int(nlist or default_nlist(n))
        if not 1 <= nlist <= n:
            raise ConfigError(f"nlist must be in 1..{n} for a map of {n} entries, not {nlist}")
        n_train = int(min(pool.size, train_size or max(40 * nlist, 20_000)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        index.cp.max_points_per_centroid = max(256, -(-n_train // nlist))
        params = IndexParams(kind="ivf", nlist=nlist, nprobe=1, rerank=rerank)
    else:
        n_train = int(min(pool.size, train_size or 50_000))
        index = faiss.IndexHNSWSQ(
            d, faiss.ScalarQuantizer.QT_8bit, int(hnsw_m), faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = int(ef_construction)
        params = IndexParams(
            kind="hnsw", hnsw_m=int(hnsw_m), ef_construction=int(ef_construction),
            ef_search=max(16, rerank), rerank=rerank,
        )  # fmt: skip
    index.verbose = False
    with faiss_threads(os.cpu_count() or 1):
        t0 = time.perf_counter()
        index.train(_training_rows(embeddings, pool[:n_train]))
        t1 = time.perf_counter()
        with tqdm(total=n, desc=f"{kind} index", unit="entry", disable=not progress) as bar:
            for start in range(0, n, _ADD_CHUNK):
                block = _as_float32(embeddings[start : start + _ADD_CHUNK])
                index.add(np.ascontiguousarray(block))
                bar.update(block.shape[0])
    t2 = time.perf_counter()
    approx = ApproxIndex(index, replace(params, train_size=n_train))
    queries = _tuning_queries(embeddings, tune_ids, tuning_noise, rng)
    _tune(approx, embeddings, queries, target_recall, tuning_noise)
    LOG.info(
        "%s index over %d entries: trained on %d in %.1f s, filled in %.1f s, tuned in %.1f s "
        "(%s)", kind, n, n_train, t1 - t0, t2 - t1, time.perf_counter() - t2, approx.params,
    )  # fmt: skip
    return approx


def _tune(
    approx: ApproxIndex,
    embeddings: np.ndarray,
    queries: np.ndarray,
    target: float,
    noise: float,
) -> None:
    """Smallest nprobe / efSearch whose top-1 recall on ``queries`` reaches ``target``."""
    with faiss_threads(os.cpu_count() or 1):
        best, truth = exact_search(embeddings, queries, 1)
    if approx.kind == "ivf":
        nlist = approx.params.nlist
        steps = sorted({min(nlist, s) for s in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)})
        steps += [s for s in (128, 192, 256, 384, 512, 768, 1024) if s < nlist] + [nlist]
        key = "nprobe"
    else:
        rerank = approx.params.rerank
        steps = [rerank] + [s for s in (48, 64, 96, 128, 192, 256, 384, 512, 1024) if s > rerank]
        key = "ef_search"
    recall = -1.0
    for value in sorted(set(steps)):
        approx.set_search_params(**{key: value})
        with faiss_threads(os.cpu_count() or 1):
            scores, found = approx.search(embeddings, queries, 1)
        recall = _recall_at_1(found, scores, truth, best)
        LOG.debug("%s=%d: top-1 recall %.4f", key, value, recall)
        if recall >= target:
            break
    else:
        LOG.warning(
            "approximate index reaches only %.3f top-1 recall (target %.3f) at %s=%d",
            recall, target, key, value,
        )  # fmt: skip
    approx.params = replace(
        approx.params,
        tuned_recall=round(recall, 4),
        tuning_queries=int(queries.shape[0]),
        tuning_noise=float(noise),
    )
