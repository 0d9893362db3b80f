"""``ivf``: inverted lists over spherical k-means centroids, 8-bit codes, exact re-score.

The approximate kind ``auto`` picks for large maps; FAISS can search it on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from liploc_ros.errors import ConfigError
from liploc_ros.mapdb.indexes.approx import ApproxParams, CandidateIndex
from liploc_ros.mapdb.indexes.faiss_support import faiss_module
from liploc_ros.mapdb.indexes.legacy import LegacyHeader

#: the nprobe values the build-time tuning tries (capped at nlist), then larger ones
_NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
_NPROBE_MORE = (128, 192, 256, 384, 512, 768, 1024)


@dataclass(frozen=True)
class IvfParams(ApproxParams):
    """Inverted lists, and how many are scanned per query."""

    kind: ClassVar[str] = "ivf"
    nlist: int = 0
    nprobe: int = 0


def default_nlist(num_entries: int) -> int:
    """About 2 sqrt(N) lists, but at least 39 training points per list (FAISS's minimum)
    once the tuning queries are held out.

    Fewer lists than the usual 4 sqrt(N) because k-means training and assignment cost grows
    with N x nlist and this runs on small machines; at one query, scanning the centroids
    (nlist x D floats) costs as much as scanning the probed lists, so 2 sqrt(N) also searches
    as fast (bench/bench_search.py).
    """
    return int(max(1, min(round(2 * math.sqrt(num_entries)), num_entries // 50)))


class IvfIndex(LegacyHeader, CandidateIndex):
    """FAISS IndexIVFScalarQuantizer (QT_8bit, inner product); nprobe tuned at build."""

    name = "ivf"
    summary = "inverted lists, approximate"
    params_type = IvfParams
    gpu = True
    search_params = ("nprobe", "rerank")
    tuned_param = "nprobe"

    @classmethod
    def create(  # type: ignore[override]  # the base's **options are each kind's own keywords
        cls, dim: int, num_entries: int, pool: int, *, rerank: int, train_size: int | None,
        seed: int, nlist: int | None = None,
    ) -> tuple[Any, IvfParams, int]:  # fmt: skip
        faiss = faiss_module()
        nlist = int(nlist or default_nlist(num_entries))
        if not 1 <= nlist <= num_entries:
            raise ConfigError(
                f"nlist must be in 1..{num_entries} for a map of {num_entries} entries, "
                f"not {nlist}"
            )
        n_train = int(min(pool, train_size or max(40 * nlist, 20_000)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        index.cp.max_points_per_centroid = max(256, -(-n_train // nlist))
        return index, IvfParams(nlist=nlist, nprobe=1, rerank=rerank), n_train

    @classmethod
    def tuning_steps(cls, params: IvfParams) -> list[int]:
        nlist = params.nlist
        steps = sorted({min(nlist, s) for s in _NPROBE_STEPS})
        return steps + [s for s in _NPROBE_MORE if s < nlist] + [nlist]

    def check_search_param(self, key: str, value: int) -> None:
        if key == "nprobe" and not 1 <= value <= max(1, self.params.nlist):
            raise ConfigError(f"nprobe must be in 1..{self.params.nlist}, not {value}")
        super().check_search_param(key, value)

    def _apply(self) -> None:
        if self.on_gpu:
            faiss = faiss_module()
            faiss.GpuParameterSpace().set_index_parameter(
                self._search_index, "nprobe", self.params.nprobe
            )
        else:
            self.index.nprobe = self.params.nprobe

    @classmethod
    def describe(cls, params: IvfParams) -> str:
        text = f"ivf, {params.nlist} lists, nprobe {params.nprobe}"
        return text + cls.describe_candidates(params)
