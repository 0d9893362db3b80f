"""Synthetic maps for tests and benchmarks, shaped like real ones.

Real map embeddings are not uniform noise: consecutive keyframes along a street look alike and
streets differ. Search speed and approximate-index recall depend on that structure, so the
benchmarks and tests use embeddings with it: each segment of a route (a street) has its own
random centre, and the entries along it follow a smooth random walk around that centre. Every
vector is then standardised the way the model's final LayerNorm leaves it (zero mean, unit
variance across its dimensions).
"""

from __future__ import annotations

import math

import numpy as np

from liploc_ros.mapdb.database import MapDatabase
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.preprocess.config import RangeImageConfig


def route_embeddings(
    n: int,
    dim: int = 256,
    *,
    seed: int = 0,
    segment: int = 500,
    smoothness: float = 0.95,
    wander: float = 0.7,
    dtype: type = np.float32,
) -> np.ndarray:
    """(n, dim) embeddings in route order; ``smoothness`` is the correlation of neighbours."""
    rng = np.random.default_rng(seed)
    segments = max(1, math.ceil(n / segment))
    centres = rng.standard_normal((segments, dim), dtype=np.float32)
    walk = rng.standard_normal((segments, dim), dtype=np.float32)
    step = math.sqrt(1.0 - smoothness**2)
    out: np.ndarray = np.empty((n, dim), dtype=dtype)
    starts = np.arange(segments) * segment
    for t in range(min(segment, n)):
        walk *= smoothness
        walk += step * rng.standard_normal((segments, dim), dtype=np.float32)
        rows = starts + t
        keep = rows < n
        x = centres[keep] + wander * walk[keep]
        x -= x.mean(axis=1, keepdims=True)
        x /= x.std(axis=1, keepdims=True)
        out[rows[keep]] = x
    return out


def noisy_queries(
    embeddings: np.ndarray, count: int, noise: float, *, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` copies of random entries plus Gaussian noise of ``noise`` times their
    per-dimension spread; returns (queries float32, the entries they were copied from)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, embeddings.shape[0], count)
    rows = np.asarray(embeddings[ids], dtype=np.float32)
    spread = float(np.asarray(embeddings[: min(10_000, len(embeddings))], np.float32).std())
    queries = rows + noise * spread * rng.standard_normal(rows.shape, dtype=np.float32)
    return queries.astype(np.float32), ids


def synthetic_info(
    dim: int = 256,
    *,
    fingerprint: str = "0123456789abcdef",
    model_name: str = "synthetic",
    frame_id: str = "map",
    sources: tuple[str, ...] = ("synthetic/route",),
    lidar: RangeImageConfig | None = None,
) -> MapInfo:
    return MapInfo(
        model_fingerprint=fingerprint,
        model_name=model_name,
        embed_dim=dim,
        normalized=False,
        lidar=lidar or RangeImageConfig(),
        frame_id=frame_id,
        sources=sources,
    )


def synthetic_route(n: int, *, seed: int = 0, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth drive in the x-y plane: positions (n, 3) and orientations (n, 4) x, y, z, w."""
    rng = np.random.default_rng(seed)
    yaw = np.cumsum(rng.normal(0.0, 0.05, n))
    positions = np.zeros((n, 3))
    positions[1:, 0] = np.cumsum(step * np.cos(yaw[:-1]))
    positions[1:, 1] = np.cumsum(step * np.sin(yaw[:-1]))
    orientations = np.zeros((n, 4))
    orientations[:, 2] = np.sin(yaw / 2)
    orientations[:, 3] = np.cos(yaw / 2)
    return positions, orientations


def synthetic_map(
    n: int,
    dim: int = 256,
    *,
    seed: int = 0,
    dtype: type = np.float32,
    info: MapInfo | None = None,
    embeddings: np.ndarray | None = None,
) -> MapDatabase:
    """A map of ``n`` entries along one synthetic drive (10 Hz stamps, 1 m apart)."""
    emb = route_embeddings(n, dim, seed=seed, dtype=dtype) if embeddings is None else embeddings
    positions, orientations = synthetic_route(n, seed=seed)
    return MapDatabase(
        emb,
        positions,
        orientations,
        np.arange(n) * 0.1,
        info or synthetic_info(emb.shape[1]),
        frame_index=np.arange(n),
    )
