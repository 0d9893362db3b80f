"""Exact inner-product search over a map's embeddings, and the exact re-scoring of
candidates that makes every approximate kind's scores exact.

A float32 map is scanned straight from its memory map (no copy): a few queries by FAISS's
brute force on one core (OpenMP and BLAS threads cost more than they save for one query, and
far more when other processes keep the cores busy), a batch in blocks with BLAS matrix
products. The top k are deterministic: the best score first, the lower entry index first
among equal scores (FAISS alone keeps an arbitrary one of equal scores). A float16 map is
scanned by a FAISS float16 scalar-quantizer index (its codes are the map's bytes, decoded
exactly), and its candidates re-scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.mapdb.indexes.faiss_support import (
    ADD_CHUNK,
    SINGLE_THREAD_BELOW,
    faiss_module,
    faiss_threads,
    require_gpu,
    threads_for,
)

_BLOCK_ELEMENTS = 1 << 24
_SCAN_BLOCK_ROWS = 1 << 16
_SPARE_CANDIDATES = 8


def as_float32(block: np.ndarray) -> np.ndarray:
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
    faiss = faiss_module()
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
    faiss = faiss_module()
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
    if embeddings.dtype == np.float32 and q.shape[0] < SINGLE_THREAD_BELOW:
        return _search_few(embeddings, q, k)
    block = int(min(n, max(4096, _BLOCK_ELEMENTS // max(1, q.shape[0]))))
    best = None
    for start in range(0, n, block):
        rows = as_float32(embeddings[start : start + block])
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
    gathered = as_float32(embeddings[unique])[inverse.reshape(safe.shape)]  # (Q, kc, D)
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
        faiss = faiss_module()
        resources = require_gpu(device)
        config = faiss.GpuIndexFlatConfig()
        config.device = device
        config.useFloat16 = self.embeddings.dtype == np.float16
        index = faiss.GpuIndexFlat(
            resources, self.embeddings.shape[1], faiss.METRIC_INNER_PRODUCT, config
        )
        for start in range(0, self.embeddings.shape[0], ADD_CHUNK):
            index.add(as_float32(self.embeddings[start : start + ADD_CHUNK]))
        self._gpu_resources, self._gpu_index = resources, index

    def _fp16(self) -> Any:
        if self._fp16_index is None:
            faiss = faiss_module()
            n, d = self.embeddings.shape
            index = faiss.IndexScalarQuantizer(
                d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            # The fp16 scalar quantizer's code is the IEEE half itself: copy, do not convert.
            for start in range(0, n, ADD_CHUNK):
                block = np.ascontiguousarray(self.embeddings[start : start + ADD_CHUNK])
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
