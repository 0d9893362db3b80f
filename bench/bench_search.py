"""Map search speed and recall: exact and approximate, 10k / 100k / 1M entries of 256 dims.

For each map size, on route-shaped synthetic embeddings (liploc_ros.mapdb.synthetic) with
queries that are noisy copies of map entries, prints the median single-query (Q=1, what the
localizer does) latency of:

- exact search as MapDatabase does it (``faiss.knn`` on one core over the float32 array, with
  deterministic ties), plain ``faiss.knn`` for comparison, a numpy/BLAS matrix-vector
  product for comparison, and a float16 map (FAISS fp16 scalar quantizer, exact for the
  stored halves);
- the approximate index that ``save(index="ivf")`` builds (IVF, 8-bit codes, exact re-score),
  with its build time, tuned nprobe and top-1 / top-5 recall against exact search.

Then saves the 1M map with its index, and in a fresh process loads it (mmap=True,
verify=True) and reports the load time and the resident memory it added (VmRSS, split into
anonymous and file-backed pages) against the file size.

Goals (2-core machine): exact median <= 1 ms at 100k; approximate median <= 1 ms at 1M with
top-1 recall >= 0.95; the loaded 1M map must not take twice its size in memory.
Runs about 5 minutes on the 2-core machine (most of it building and checking the 1M index).

    .venv/bin/python bench/bench_search.py [--sizes 10000 100000 1000000] [--dir /tmp]
        [--headings 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import noisy_queries, route_embeddings, synthetic_map

DIM = 256
K = 5


def median_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int) -> float:
    for q in queries[:5]:
        fn(q[None, :])
    times = []
    for i in range(repeats):
        q = queries[i % len(queries)][None, :]
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def recall(approx: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    top1 = float(np.mean(approx[:, 0] == exact[:, 0]))
    top5 = float(
        np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)])
    )
    return top1, top5


def rss_kib() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process in KiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def measure_load(path: str) -> None:
    """Child process: load the map and report memory and timings as JSON."""
    import faiss  # imported before the baseline, as a localizer would have it

    del faiss
    before = rss_kib()
    t0 = time.perf_counter()
    db = MapDatabase.load(path, mmap=True, verify=True)
    load_s = time.perf_counter() - t0
    after_load = rss_kib()
    queries, _ = noisy_queries(db.embeddings, 300, 0.5, seed=7)
    approx_ms = median_ms(lambda q: db.search(q, K), queries, 300)
    after_search = rss_kib()
    embeddings_type = type(db.embeddings).__name__
    db = None  # release the map before timing the next load
    t0 = time.perf_counter()
    MapDatabase.load(path, mmap=True, verify=False)
    load_noverify_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "file_bytes": os.path.getsize(path),
                "embeddings_type": embeddings_type,
                "load_s": load_s,
                "load_noverify_s": load_noverify_s,
                "before": before,
                "after_load": after_load,
                "after_search": after_search,
                "approx_ms": approx_ms,
            }
        )
    )


def bench_size(
    n: int, repeats: int, tmp: Path, nlist: int | None = None, k: int = K
) -> Path | None:
    print(f"\n== {n:,} entries x {DIM} (float32, {n * DIM * 4 / 1e6:.0f} MB of embeddings)")
    t0 = time.perf_counter()
    emb = route_embeddings(n, DIM, seed=n)
    db = synthetic_map(n, DIM, embeddings=emb)
    print(f"  synthetic map generated in {time.perf_counter() - t0:.1f} s")
    queries, _ = noisy_queries(emb, 1000, 0.5, seed=1)
    harder, _ = noisy_queries(emb, 1000, 1.0, seed=2)

    # a 1M scan takes a tenth of a second or more: fewer repeats keep the run short
    exact_repeats = repeats if n <= 100_000 else min(repeats, 40)
    exact_ms = median_ms(lambda q: db.search(q, k, exact=True), queries, exact_repeats)
    import faiss

    faiss.omp_set_num_threads(1)
    knn_ms = median_ms(
        lambda q: faiss.knn(q, emb, k, metric=faiss.METRIC_INNER_PRODUCT), queries, exact_repeats
    )
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    blas_ms = median_ms(lambda q: emb @ q[0], queries, exact_repeats)
    t0 = time.perf_counter()
    truth = db.search(queries, k, exact=True).indices
    batch_s = time.perf_counter() - t0
    truth_hard = db.search(harder, k, exact=True).indices
    print(f"  exact  (MapDatabase.search)       median {exact_ms:8.3f} ms / query (Q=1)")
    print(f"  exact  (faiss.knn, 1 thread)      median {knn_ms:8.3f} ms / query (Q=1)")
    print(f"  scores (numpy/BLAS mat-vec only)  median {blas_ms:8.3f} ms / query (Q=1)")
    print(
        f"  exact  batch of 1000 queries      {batch_s * 1e3:8.1f} ms ({batch_s:.4f} ms/q, BLAS)"
    )

    if n <= 100_000:
        db16 = synthetic_map(n, DIM, embeddings=emb.astype(np.float16))
        fp16_ms = median_ms(lambda q: db16.search(q, k, exact=True), queries, repeats)
        r1, _ = recall(db16.search(queries, k, exact=True).indices, truth)
        print(
            f"  exact  float16 map (FAISS fp16)   median {fp16_ms:8.3f} ms / query (Q=1), "
            f"top-1 same as float32: {r1:.3f}"
        )
        del db16

    t0 = time.perf_counter()
    params = db.build_index("ivf", progress=False, nlist=nlist)
    build_s = time.perf_counter() - t0
    approx_ms = median_ms(lambda q: db.search(q, k), queries, repeats)
    found = db.search(queries, k).indices
    r1, r5 = recall(found, truth)
    h1, h5 = recall(db.search(harder, k).indices, truth_hard)
    print(
        f"  approx (IVF {params.nlist} lists, nprobe {params.nprobe}, SQ8 + re-score "
        f"{params.rerank}) built in {build_s:.1f} s (train {params.train_size:,})"
    )
    print(
        f"  approx median {approx_ms:8.3f} ms / query (Q=1); recall vs exact, queries with "
        f"noise 0.5: top-1 {r1:.3f}, top-5 {r5:.3f}; noise 1.0: top-1 {h1:.3f}, top-5 "
        f"{h5:.3f} (tuning, noise {params.tuning_noise}: {params.tuned_recall:.3f})"
    )
    for nprobe in sorted({max(1, params.nprobe // 2), params.nprobe * 2} - {params.nprobe}):
        db.set_search_params(nprobe=nprobe)
        ms = median_ms(lambda q: db.search(q, k), queries, repeats)
        r1b, _ = recall(db.search(queries, k).indices, truth)
        h1b, _ = recall(db.search(harder, k).indices, truth_hard)
        print(
            f"         nprobe {nprobe:4d}: median {ms:8.3f} ms, top-1 recall {r1b:.3f} "
            f"(noise 0.5), {h1b:.3f} (noise 1.0)"
        )
    db.set_search_params(nprobe=params.nprobe)
    if n < 1_000_000:
        return None
    path = tmp / "bench_1m.map"
    t0 = time.perf_counter()
    db.save(path, index="ivf", progress=False)
    print(f"  saved with its index in {time.perf_counter() - t0:.1f} s: {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the 1M map")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: automatic)")
    parser.add_argument("--measure-load", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--headings", type=int, default=1,
        help="crops per keyframe (build-map --headings): each size counts keyframes, the map "
        "holds that many times as many entries and a search asks for that many times K, as "
        "the localizer does (default 1)",
    )  # fmt: skip
    args = parser.parse_args()
    k = K * args.headings
    args.sizes = [n * args.headings for n in args.sizes]
    if args.measure_load:
        measure_load(args.measure_load)
        return

    logging.basicConfig(format="  %(message)s")
    logging.getLogger("liploc_ros").setLevel(logging.INFO)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}")
    if args.headings > 1:
        print(f"{args.headings} crops per keyframe: entries {args.sizes}, K = {k}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        saved = None
        for n in args.sizes:
            saved = bench_size(n, args.repeats, Path(tmp), args.nlist, k) or saved
        if saved is not None:
            out = subprocess.run(
                [sys.executable, __file__, "--measure-load", str(saved)],
                check=True,
                capture_output=True,
                text=True,
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            mib = 1 / 1024
            d_load = {k: (m["after_load"][k] - m["before"][k]) * mib for k in m["before"]}
            d_search = {k: (m["after_search"][k] - m["before"][k]) * mib for k in m["before"]}
            size_mib = m["file_bytes"] / 2**20
            print(f"\n== loading the 1M map ({size_mib:,.0f} MiB file) in a fresh process")
            print(
                f"  load(mmap=True, verify=True) {m['load_s']:.2f} s, verify=False "
                f"{m['load_noverify_s']:.2f} s; embeddings are a {m['embeddings_type']}"
            )
            for label, d in (("after load", d_load), ("after 300 searches", d_search)):
                print(
                    f"  RSS added {label:20s} {d['VmRSS']:7.0f} MiB (anonymous "
                    f"{d['RssAnon']:6.0f}, file-backed {d['RssFile']:6.0f}) = "
                    f"{d['VmRSS'] / size_mib:.2f} x the file"
                )
            print(f"  approx median in that process {m['approx_ms']:.3f} ms / query (Q=1)")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
