"""``hnsw``: a HNSW graph over 8-bit codes, exact re-score (CPU only: FAISS has no GPU HNSW)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from liploc_ros.errors import DeviceError
from liploc_ros.mapdb.indexes.approx import ApproxParams, CandidateIndex
from liploc_ros.mapdb.indexes.faiss_support import faiss_module
from liploc_ros.mapdb.indexes.legacy import LegacyHeader

#: efSearch values the build-time tuning tries above the re-scoring depth
_EF_STEPS = (48, 64, 96, 128, 192, 256, 384, 512, 1024)


@dataclass(frozen=True)
class HnswParams(ApproxParams):
    """Links per node, construction and search beam widths."""

    kind: ClassVar[str] = "hnsw"
    hnsw_m: int = 0
    ef_construction: int = 0
    ef_search: int = 0


class HnswIndex(LegacyHeader, CandidateIndex):
    """FAISS IndexHNSWSQ (QT_8bit, inner product); efSearch tuned at build."""

    name = "hnsw"
    summary = "HNSW graph, approximate, CPU only"
    params_type = HnswParams
    search_params = ("ef_search", "rerank")
    tuned_param = "ef_search"

    @classmethod
    def create(  # type: ignore[override]  # the base's **options are each kind's own keywords
        cls, dim: int, num_entries: int, pool: int, *, rerank: int, train_size: int | None,
        seed: int, hnsw_m: int = 32, ef_construction: int = 80,
    ) -> tuple[Any, HnswParams, int]:  # fmt: skip
        faiss = faiss_module()
        n_train = int(min(pool, train_size or 50_000))
        index = faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, int(hnsw_m), faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = int(ef_construction)
        params = HnswParams(
            hnsw_m=int(hnsw_m), ef_construction=int(ef_construction),
            ef_search=max(16, rerank), rerank=rerank,
        )  # fmt: skip
        return index, params, n_train

    @classmethod
    def tuning_steps(cls, params: HnswParams) -> list[int]:
        return [params.rerank] + [s for s in _EF_STEPS if s > params.rerank]

    def _apply(self) -> None:
        self.index.hnsw.efSearch = max(self.params.ef_search, self.params.rerank)

    def to_gpu(self, device: int = 0) -> None:
        raise DeviceError("FAISS has no GPU HNSW index; use an ivf or flat map on the GPU")

    @classmethod
    def describe(cls, params: HnswParams) -> str:
        text = f"hnsw, M {params.hnsw_m}, efSearch {params.ef_search}"
        return text + cls.describe_candidates(params)
