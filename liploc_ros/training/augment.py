"""Training-only augmentation of the resized 8-bit pictures (before normalisation).

The holes are defined on the resized uint8 pictures, filled with an 8-bit value, as the
authors' coarse dropout; the colour jitter stands in for light the training towns lack.
"""

from __future__ import annotations

import numpy as np

from liploc_ros.training.config import AugmentSection


def coarse_dropout(
    picture: np.ndarray, rng: np.random.Generator, cfg: AugmentSection
) -> np.ndarray:
    """The authors' training augmentation: with probability ``p``, 1..max_holes rectangles
    (sides ``min_size``..``max_size`` px at ``reference_size``, scaled with the picture) set
    to ``fill``. Returns a new array; the input is left as it is."""
    out = np.array(picture, copy=True)
    if cfg.max_holes == 0 or rng.random() >= cfg.p:
        return out
    height, width = out.shape[:2]
    holes = int(rng.integers(cfg.min_holes, cfg.max_holes + 1))
    for _ in range(holes):
        h = _scaled_side(rng, cfg, height)
        w = _scaled_side(rng, cfg, width)
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        out[y : y + h, x : x + w] = cfg.fill
    return out


def color_jitter(picture: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """An RGB picture under other light: one brightness factor in [1 - s, 1 + s] times one
    gain per channel in [1 - s/2, 1 + s/2], clipped to 8 bits (a new array)."""
    if strength <= 0:
        return np.array(picture, copy=True)
    gain = rng.uniform(1 - strength, 1 + strength) * rng.uniform(
        1 - strength / 2, 1 + strength / 2, size=3
    )
    out = picture.astype(np.float32) * gain.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _scaled_side(rng: np.random.Generator, cfg: AugmentSection, side: int) -> int:
    scale = side / cfg.reference_size
    lo = max(1, round(cfg.min_size * scale))
    hi = max(lo, round(cfg.max_size * scale))
    return min(side, int(rng.integers(lo, hi + 1)))
