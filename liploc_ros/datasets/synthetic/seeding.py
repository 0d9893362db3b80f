"""Seeded randomness of the synthetic world.

Two kinds: generators keyed by integers (``rng(seed, SALT, traversal, frame)``) so that every
frame is reproducible on its own, in any order; and a stateless integer hash giving uniform
numbers per world cell (window, texture tile, parking slot), so that details stay fixed in
the world from one frame and one traversal to the next without being stored.
"""

from __future__ import annotations

import numpy as np

#: salts that separate the random streams of one seed
SALT_ROADS = 11
SALT_LAYOUT = 12
SALT_ROUTE = 13
SALT_CARS = 14
SALT_TRAJECTORY = 15
SALT_TRAVERSAL = 16
SALT_CAMERA = 17
SALT_LIDAR = 18
SALT_TEXTURE = 19

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def rng(*keys: int) -> np.random.Generator:
    """A generator that depends only on ``keys`` (non-negative integers)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _mix(h: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser; uint64 arrays wrap around silently
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def hash01(*keys: np.ndarray | int) -> np.ndarray:
    """Uniform numbers in [0, 1), one per element of the broadcast integer ``keys``."""
    arrays = [np.atleast_1d(np.asarray(k)) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    h = np.full(shape, _GOLDEN, dtype=np.uint64)
    for a in arrays:
        h = _mix(h ^ a.astype(np.int64).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
