"""Configs of the synthetic world: the town, the sensor rig and one traversal of the town.

Three configs because they vary independently: one town is driven many times (traversals),
and the same drive can be rendered by rigs of different resolution (fast tests, training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from liploc_ros.errors import ConfigError

#: KITTI image_2 geometry (P_rect_02 of the 2011_09_26 drives), the camera we imitate
KITTI_IMAGE_SIZE = (1242, 375)
KITTI_FX = 721.5377
KITTI_CX = 609.5593
KITTI_CY = 172.854


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be within [{lo}, {hi}], got {value}")


def _check_pair(name: str, pair: tuple[float, float], lo: float, hi: float) -> None:
    a, b = pair
    if not lo <= a <= b <= hi:
        raise ConfigError(f"{name} must be an ordered pair within [{lo}, {hi}], got {pair}")


@dataclass(frozen=True)
class TownConfig:
    """A procedurally generated town; ``seed`` alone makes a different town."""

    seed: int = 0
    #: blocks of the street grid along x and y (streets: one more than blocks)
    blocks_x: int = 7
    blocks_y: int = 7
    #: range of block sizes (street spacing, centre line to centre line) in metres
    block_size: tuple[float, float] = (55.0, 110.0)
    #: fraction of street segments removed (keeping every junction at degree >= 2 and the
    #: network connected), which makes T-junctions, corners and long blocks
    missing_streets: float = 0.2
    lane_width: float = 3.5
    parking_width: float = 2.2
    sidewalk_width: float = 3.3
    #: range of building heights in metres (a few towers may reach the top)
    building_height: tuple[float, float] = (4.0, 60.0)
    #: probability that one side of a street is lined with trees
    tree_lined: float = 0.5
    #: probability that a kerb parking slot holds a car
    parked_cars: float = 0.55

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"town seed must be a non-negative integer, got {self.seed!r}")
        for name in ("blocks_x", "blocks_y"):
            value = getattr(self, name)
            if not 2 <= value <= 40:
                raise ConfigError(f"{name} must be within [2, 40], got {value}")
        _check_pair("block_size", self.block_size, 40.0, 400.0)
        _check_range("missing_streets", self.missing_streets, 0.0, 0.6)
        _check_range("lane_width", self.lane_width, 2.5, 5.0)
        _check_range("parking_width", self.parking_width, 1.8, 4.0)
        _check_range("sidewalk_width", self.sidewalk_width, 1.5, 8.0)
        _check_pair("building_height", self.building_height, 2.0, 200.0)
        _check_range("tree_lined", self.tree_lined, 0.0, 1.0)
        _check_range("parked_cars", self.parked_cars, 0.0, 1.0)
        half_walk = self.lane_width + self.parking_width + self.sidewalk_width
        if self.block_size[0] < 2 * half_walk + 20.0:
            raise ConfigError(
                f"block_size {self.block_size} leaves no room for buildings: the smallest "
                f"block must exceed twice the street half-width ({half_walk} m) by 20 m"
            )


@dataclass(frozen=True)
class RigConfig:
    """A KITTI-like camera + HDL-64E-like LiDAR rig on a car."""

    #: camera image size as a fraction of KITTI's 1242 x 375 (intrinsics scale with it)
    image_scale: float = 1.0 / 3.0
    #: LiDAR origin above the ground (KITTI: 1.73 m)
    lidar_height: float = 1.73
    #: camera optical centre in the LiDAR frame (x forward, y left, z up), KITTI-like
    camera_offset: tuple[float, float, float] = (0.27, 0.0, -0.08)
    lidar_beams: int = 64
    #: elevation of the top and the bottom beam in degrees (HDL-64E: +2.0 .. -24.9)
    lidar_fov_deg: tuple[float, float] = (2.0, -24.9)
    #: azimuth steps per revolution (KITTI scans: about 2000 points per beam)
    lidar_azimuth_steps: int = 2048
    lidar_max_range: float = 120.0
    #: standard deviation of the Gaussian range noise in metres
    range_noise: float = 0.02
    #: fraction of returns randomly lost (glass loses more)
    dropout: float = 0.03
    #: the camera sees nothing beyond this horizontal distance (haze; sky beyond)
    camera_max_range: float = 150.0
    #: standard deviation of the camera's pixel noise in 8-bit levels
    image_noise: float = 2.0
    #: frame rate of the rig (stamps and speed -> spacing)
    rate_hz: float = 10.0

    def __post_init__(self) -> None:
        _check_range("image_scale", self.image_scale, 0.05, 2.0)
        _check_range("lidar_height", self.lidar_height, 0.5, 5.0)
        if len(self.camera_offset) != 3 or not all(map(math.isfinite, self.camera_offset)):
            raise ConfigError(f"camera_offset must be 3 finite numbers, got {self.camera_offset}")
        if self.lidar_height + self.camera_offset[2] <= 0.2:
            raise ConfigError("the camera must be above the ground (lidar_height + offset z)")
        if not 2 <= self.lidar_beams <= 256:
            raise ConfigError(f"lidar_beams must be within [2, 256], got {self.lidar_beams}")
        up, down = self.lidar_fov_deg
        if not -89.0 < down < up < 89.0:
            raise ConfigError(
                f"lidar_fov_deg must be (top, bottom) with 89 > top > bottom > -89, got "
                f"{self.lidar_fov_deg}"
            )
        if not 64 <= self.lidar_azimuth_steps <= 8192:
            raise ConfigError(
                f"lidar_azimuth_steps must be within [64, 8192], got {self.lidar_azimuth_steps}"
            )
        _check_range("lidar_max_range", self.lidar_max_range, 5.0, 500.0)
        _check_range("range_noise", self.range_noise, 0.0, 1.0)
        _check_range("dropout", self.dropout, 0.0, 0.9)
        _check_range("camera_max_range", self.camera_max_range, 10.0, 1000.0)
        _check_range("image_noise", self.image_noise, 0.0, 50.0)
        _check_range("rate_hz", self.rate_hz, 0.1, 1000.0)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the camera images."""
        w, h = KITTI_IMAGE_SIZE
        return max(8, round(w * self.image_scale)), max(8, round(h * self.image_scale))


@dataclass(frozen=True)
class TraversalConfig:
    """One drive along the town's route: where in the street, how fast, under which light.

    Every traversal covers the same stretch of route (``frames * speed / rate`` metres from
    the route's start), so that a map from one traversal and queries from another overlap.
    """

    #: 0 is the canonical mapping drive; 1.. are query drives
    index: int = 0
    #: lane relative to the direction of travel (right-hand traffic: "right" is normal)
    lane: Literal["right", "left"] = "right"
    #: drive the route backwards (end to start)
    reverse: bool = False
    #: mean speed in m/s (with the rig's rate: the mean spacing of frames)
    speed: float = 10.0
    #: relative amplitude of the smooth speed profile (0: constant speed)
    speed_variation: float = 0.0
    #: amplitude of the smooth lateral wander in the lane, metres
    lateral_jitter: float = 0.0
    #: amplitude of the smooth heading wander, degrees
    heading_jitter_deg: float = 0.0
    #: exposure multiplier of the camera
    brightness: float = 1.0
    #: per-channel colour cast of the camera (R, G, B gains)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sun_azimuth_deg: float = 135.0
    sun_elevation_deg: float = 40.0
    #: 0 sunny .. 1 fully overcast (flat light, grey sky)
    overcast: float = 0.0
    #: fraction of kerb parking slots re-drawn for this traversal (cars moved/removed/added)
    parked_car_change: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ConfigError(f"traversal index must be a non-negative integer, got {self.index}")
        if self.lane not in ("right", "left"):
            raise ConfigError(f"lane must be 'right' or 'left', got {self.lane!r}")
        _check_range("speed", self.speed, 0.5, 40.0)
        _check_range("speed_variation", self.speed_variation, 0.0, 0.8)
        _check_range("lateral_jitter", self.lateral_jitter, 0.0, 1.0)
        _check_range("heading_jitter_deg", self.heading_jitter_deg, 0.0, 10.0)
        _check_range("brightness", self.brightness, 0.1, 3.0)
        if len(self.tint) != 3 or not all(0.3 <= t <= 2.0 for t in self.tint):
            raise ConfigError(f"tint must be 3 gains within [0.3, 2.0], got {self.tint}")
        _check_range("sun_elevation_deg", self.sun_elevation_deg, 0.0, 90.0)
        if not math.isfinite(self.sun_azimuth_deg):
            raise ConfigError(f"sun_azimuth_deg must be finite, got {self.sun_azimuth_deg}")
        _check_range("overcast", self.overcast, 0.0, 1.0)
        _check_range("parked_car_change", self.parked_car_change, 0.0, 1.0)
