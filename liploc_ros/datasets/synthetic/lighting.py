"""The light of one traversal: sun direction, sunny or overcast, exposure and colour cast."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liploc_ros.datasets.synthetic.config import TraversalConfig

_SKY_HORIZON = np.array([0.80, 0.86, 0.93], dtype=np.float32)
_SKY_ZENITH = np.array([0.30, 0.50, 0.85], dtype=np.float32)
_GREY_HORIZON = np.array([0.80, 0.81, 0.82], dtype=np.float32)
_GREY_ZENITH = np.array([0.62, 0.64, 0.68], dtype=np.float32)


@dataclass(frozen=True)
class Light:
    sun: np.ndarray  # (3,) unit vector towards the sun, map frame
    ambient: float
    diffuse: float
    gain: np.ndarray  # (3,) exposure x colour cast
    sky_horizon: np.ndarray  # (3,)
    sky_zenith: np.ndarray  # (3,)

    @staticmethod
    def of(trav: TraversalConfig) -> Light:
        az, el = math.radians(trav.sun_azimuth_deg), math.radians(trav.sun_elevation_deg)
        sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        o = trav.overcast
        return Light(
            sun=sun.astype(np.float32),
            ambient=0.45 + 0.25 * o,
            diffuse=0.65 * (1.0 - 0.85 * o),
            gain=(trav.brightness * np.asarray(trav.tint)).astype(np.float32),
            sky_horizon=(1 - o) * _SKY_HORIZON + o * _GREY_HORIZON,
            sky_zenith=(1 - o) * _SKY_ZENITH + o * _GREY_ZENITH,
        )
