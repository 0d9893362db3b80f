"""The default variation between traversals of one town.

Traversal 0 is the canonical mapping drive (right lane, steady speed, noon light, the town's
own parked cars). Later traversals cycle through lane and direction (1: same lane, as on
another day; 2: the other lane, 3.5 m to the left; 3: the opposite direction; 4: the
opposite direction in its left lane) and draw their speed profile, wander, light and
parked-car changes from (town seed, index), so that "map from traversal 0, queries from
traversal k" tests a change of time and scene (k = 1), of viewpoint too (k = 2), or of
direction (k = 3, 4: a forward-looking camera then sees the other side of each place).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from liploc_ros.datasets.synthetic.config import TraversalConfig
from liploc_ros.datasets.synthetic.seeding import SALT_TRAVERSAL, rng
from liploc_ros.errors import ConfigError

#: (lane, reverse) of traversals 1, 2, 3, 4, 5, ... (cycling)
_LANE_CYCLE: tuple[tuple[Literal["right", "left"], bool], ...] = (
    ("right", False),
    ("left", False),
    ("right", True),
    ("left", True),
)


def default_traversal(index: int, town_seed: int) -> TraversalConfig:
    """The traversal config used when a drive is asked for by index only."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ConfigError(f"traversal index must be a non-negative integer, got {index!r}")
    if index == 0:
        return TraversalConfig(index=0)
    gen = rng(town_seed, SALT_TRAVERSAL, index)
    lane, reverse = _LANE_CYCLE[(index - 1) % len(_LANE_CYCLE)]
    overcast = gen.uniform(0.4, 0.9) if gen.random() < 0.3 else gen.uniform(0.0, 0.2)
    return TraversalConfig(
        index=index,
        lane=lane,
        reverse=reverse,
        speed=10.0,
        speed_variation=float(gen.uniform(0.15, 0.35)),
        lateral_jitter=float(gen.uniform(0.1, 0.4)),
        heading_jitter_deg=float(gen.uniform(0.5, 2.0)),
        brightness=float(gen.uniform(0.7, 1.3)),
        tint=_rgb(gen.uniform(0.88, 1.12, size=3)),
        sun_azimuth_deg=float(gen.uniform(0.0, 360.0)),
        sun_elevation_deg=float(gen.uniform(15.0, 65.0)),
        overcast=float(overcast),
        parked_car_change=float(gen.uniform(0.25, 0.45)),
    )


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b
