"""The "index" header entry as format-1 maps store it for the flat, ivf and hnsw kinds.

Those three kinds once shared one parameter record; maps written with it must keep loading
and new maps of these kinds keep writing it, so their headers stay byte-for-byte what they
were. A kind added later stores its own parameters (:meth:`MapIndex.params_to_header`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from liploc_ros.config import from_dict, to_dict


@dataclass(frozen=True)
class IndexParams:
    """The shared header record of the flat, ivf and hnsw kinds (unused fields are 0)."""

    kind: str = "flat"
    #: IVF: inverted lists, and how many are scanned per query
    nlist: int = 0
    nprobe: int = 0
    #: HNSW: links per node, construction and search beam widths
    hnsw_m: int = 0
    ef_construction: int = 0
    ef_search: int = 0
    #: candidates re-scored exactly per query (at least k)
    rerank: int = 32
    #: top-1 recall against exact search measured on held-out entries at build (-1: none)
    tuned_recall: float = -1.0
    tuning_queries: int = 0
    tuning_noise: float = 0.0
    #: entries used to train the k-means centroids / scalar quantizer
    train_size: int = 0


class LegacyHeader:
    """Header codec mixin for the kinds whose parameters are a subset of IndexParams."""

    name: ClassVar[str]
    params_type: ClassVar[type]

    @classmethod
    def params_to_header(cls, params: Any) -> dict[str, Any]:
        return to_dict(IndexParams(kind=cls.name, **to_dict(params)))

    @classmethod
    def params_from_header(cls, header: Mapping[str, Any]) -> Any:
        record = from_dict(IndexParams, header, "index")
        names = [f.name for f in dataclasses.fields(cls.params_type)]
        return cls.params_type(**{name: getattr(record, name) for name in names})
