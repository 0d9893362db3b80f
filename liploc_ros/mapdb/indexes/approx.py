"""What the approximate kinds share: a FAISS index over 8-bit scalar-quantized codes (a
quarter of float32: a 1M x 256 map's index is about 260 MB, not another gigabyte) that only
proposes candidates, ``rerank`` of them per query, each re-scored exactly against the map's
own embeddings, so the scores returned are exact and only recall is approximate.

The kind's search-time knob (IVF's nprobe, HNSW's efSearch) is tuned at build time to reach
a target top-1 recall against exact search on held-out entries of the map itself (noisy
copies), and stored with the index.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.mapdb.indexes.base import MapIndex, Reader, Writer
from liploc_ros.mapdb.indexes.exact import ExactSearcher, as_float32, exact_search, rescore
from liploc_ros.mapdb.indexes.faiss_support import (
    ADD_CHUNK,
    all_threads,
    faiss_module,
    faiss_threads,
    require_gpu,
    threads_for,
)

LOG = logging.getLogger(__name__)

#: candidates an approximate index proposes per query for exact re-scoring
DEFAULT_RERANK = 32
#: top-1 recall against exact search that the build-time tuning aims for
DEFAULT_TARGET_RECALL = 0.97
#: held-out entries used as tuning queries
DEFAULT_TUNING_QUERIES = 1000
#: noise added to the tuning queries, relative to the embeddings' per-dimension spread
DEFAULT_TUNING_NOISE = 1.0


@dataclass(frozen=True)
class ApproxParams:
    """Re-scoring depth and how the build-time tuning went; every approximate kind's."""

    #: candidates re-scored exactly per query (at least k)
    rerank: int = DEFAULT_RERANK
    #: top-1 recall against exact search measured on held-out entries at build (-1: none)
    tuned_recall: float = -1.0
    tuning_queries: int = 0
    tuning_noise: float = 0.0
    #: entries used to train the k-means centroids / scalar quantizer
    train_size: int = 0


class CandidateIndex(MapIndex):
    """A FAISS index proposing candidates for exact re-scoring; built, tuned and stored."""

    search_params: ClassVar[tuple[str, ...]] = ("rerank",)
    #: the search parameter the build-time tuning sweeps
    tuned_param: ClassVar[str]

    def __init__(self, exact: ExactSearcher, params: Any, index: Any) -> None:
        super().__init__(exact, params)
        self.index = index
        self._search_index = index
        self._gpu_resources: Any = None
        self._apply()

    @property
    def on_gpu(self) -> bool:
        return self._gpu_resources is not None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.index.ntotal), int(self.index.d)

    @abstractmethod
    def _apply(self) -> None:
        """Push the search parameters into the FAISS index (CPU or GPU copy)."""

    def apply_search_params(self, changes: Mapping[str, int]) -> None:
        super().apply_search_params(changes)
        self._apply()

    def to_gpu(self, device: int = 0) -> None:
        faiss = faiss_module()
        resources = require_gpu(device)
        self._search_index = faiss.index_cpu_to_gpu(resources, device, self.index)
        self._gpu_resources = resources
        self._apply()

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        kc = min(self.shape[0], max(k, self.params.rerank))
        with faiss_threads(threads_for(queries.shape[0])):
            _, ids = self._search_index.search(queries, kc)
        return ids

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rescore(self.exact.embeddings, queries, self.candidates(queries, k), k)

    def write(self, write: Writer) -> None:
        """Stream the serialized FAISS index (no in-memory copy)."""
        faiss = faiss_module()

        def sink(data: bytes) -> int:
            write(data)
            return len(data)

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(sink))

    @classmethod
    def open(cls, exact: ExactSearcher, params: Any, read: Reader | None) -> CandidateIndex:
        faiss = faiss_module()
        assert read is not None
        return cls(exact, params, faiss.read_index(faiss.PyCallbackIOReader(read)))

    @classmethod
    def describe_candidates(cls, params: ApproxParams) -> str:
        """The shared tail of :meth:`describe`: codes, re-scoring, tuning."""
        text = f", 8-bit codes, {params.rerank} candidates re-scored exactly"
        if params.tuned_recall >= 0:
            text += (
                f"; top-1 recall {params.tuned_recall:.3f} on {params.tuning_queries} "
                "held-out entries at build"
            )
        return text

    # ------------------------------------------------------------------------------ build

    @classmethod
    @abstractmethod
    def create(
        cls, dim: int, num_entries: int, pool: int, *, rerank: int, train_size: int | None,
        seed: int, **options: Any,
    ) -> tuple[Any, Any, int]:  # fmt: skip
        """An untrained FAISS index, its parameters and the entries to train it on (at most
        ``pool``); ``options`` are the kind's own build settings."""

    @classmethod
    @abstractmethod
    def tuning_steps(cls, params: Any) -> list[int]:
        """Values of :attr:`tuned_param` to try, from fast to accurate."""

    @classmethod
    def build(
        cls,
        exact: ExactSearcher,
        *,
        progress: bool = True,
        rerank: int = DEFAULT_RERANK,
        target_recall: float = DEFAULT_TARGET_RECALL,
        tuning_queries: int = DEFAULT_TUNING_QUERIES,
        tuning_noise: float = DEFAULT_TUNING_NOISE,
        train_size: int | None = None,
        seed: int = 0,
        **options: Any,
    ) -> CandidateIndex:
        """Train and fill the index over the map's embeddings, then tune it to
        ``target_recall``."""
        from tqdm import tqdm

        embeddings = exact.embeddings
        n, d = embeddings.shape
        if n == 0:
            raise MapError("cannot build an approximate index over an empty map")
        if not 0.0 < target_recall <= 1.0:
            raise ConfigError(f"target_recall must be in (0, 1], not {target_recall}")
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        n_tune = int(min(tuning_queries, max(1, n // 10)))
        tune_ids, pool = perm[:n_tune], perm[n_tune:] if n > n_tune else perm
        index, params, n_train = cls.create(
            d, n, pool.size, rerank=rerank, train_size=train_size, seed=seed, **options
        )
        index.verbose = False
        with faiss_threads(all_threads()):
            t0 = time.perf_counter()
            index.train(_rows(embeddings, pool[:n_train]))
            t1 = time.perf_counter()
            desc = f"{cls.name} index"
            with tqdm(total=n, desc=desc, unit="entry", disable=not progress) as bar:
                for start in range(0, n, ADD_CHUNK):
                    block = as_float32(embeddings[start : start + ADD_CHUNK])
                    index.add(np.ascontiguousarray(block))
                    bar.update(block.shape[0])
        t2 = time.perf_counter()
        built = cls(exact, replace(params, train_size=n_train), index)
        queries = _tuning_queries(embeddings, tune_ids, tuning_noise, rng)
        built._tune(queries, target_recall, tuning_noise)
        LOG.info(
            "%s index over %d entries: trained on %d in %.1f s, filled in %.1f s, tuned in "
            "%.1f s (%s)", cls.name, n, n_train, t1 - t0, t2 - t1, time.perf_counter() - t2,
            built.params,
        )  # fmt: skip
        return built

    def _tune(self, queries: np.ndarray, target: float, noise: float) -> None:
        """Smallest :attr:`tuned_param` whose top-1 recall on ``queries`` reaches ``target``."""
        embeddings = self.exact.embeddings
        with faiss_threads(all_threads()):
            best, truth = exact_search(embeddings, queries, 1)
        key = self.tuned_param
        recall = -1.0
        for value in sorted(set(self.tuning_steps(self.params))):
            self.set_search_params(**{key: value})
            with faiss_threads(all_threads()):
                scores, found = self.search(queries, 1)
            recall = _recall_at_1(found, scores, truth, best)
            LOG.debug("%s=%d: top-1 recall %.4f", key, value, recall)
            if recall >= target:
                break
        else:
            LOG.warning(
                "approximate index reaches only %.3f top-1 recall (target %.3f) at %s=%d",
                recall, target, key, value,
            )  # fmt: skip
        self.params = replace(
            self.params,
            tuned_recall=round(recall, 4),
            tuning_queries=int(queries.shape[0]),
            tuning_noise=float(noise),
        )


def _rows(embeddings: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(as_float32(embeddings[np.sort(ids)]))


def _tuning_queries(
    embeddings: np.ndarray, ids: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    rows = _rows(embeddings, ids)
    spread = rows.std(axis=0, keepdims=True) if rows.shape[0] > 1 else 1.0
    return (rows + noise * spread * rng.standard_normal(rows.shape)).astype(np.float32)


def _recall_at_1(
    found: np.ndarray, scores: np.ndarray, truth: np.ndarray, best: np.ndarray
) -> float:
    """Top-1 hits; a different entry with the exact best score (a tie) counts as a hit."""
    return float(np.mean((found[:, 0] == truth[:, 0]) | (scores[:, 0] >= best[:, 0])))
