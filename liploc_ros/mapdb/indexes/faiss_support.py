"""FAISS, imported lazily, and the thread and GPU settings every index kind shares.

FAISS is imported only when an index is built, loaded or searched, so that reading a map's
configuration or its CLI help costs no FAISS start-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from liploc_ros.errors import DeviceError, MapError

#: below this many queries a search runs on one thread (OpenMP start-up dominates)
SINGLE_THREAD_BELOW = 8
#: rows added to a FAISS index at a time (bounds the float32 copy of a float16 map)
ADD_CHUNK = 1 << 16


def faiss_module() -> Any:
    """The ``faiss`` module, or a MapError that says how to install it."""
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
    faiss = faiss_module()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, count))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def threads_for(num_queries: int) -> int:
    """One thread for a handful of queries (the localizer's case), every core for batches."""
    return 1 if num_queries < SINGLE_THREAD_BELOW else (os.cpu_count() or 1)


def all_threads() -> int:
    """Every core: for building and tuning an index."""
    return os.cpu_count() or 1


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    faiss = faiss_module()
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def require_gpu(device: int = 0) -> Any:
    """FAISS GPU resources for ``device``, or a DeviceError that says why there are none."""
    faiss = faiss_module()
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
