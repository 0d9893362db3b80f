"""The published pose and covariance of the sequence filter's dominant mode.

The filter estimates x, y and yaw on the ground; z, roll and pitch come from the map entry
nearest to the mode that faces its heading (its crop's orientation is the vehicle's on that
slope). The covariance is the mode's spread plus the configured extra standard deviations,
and the single-frame floors for what the filter does not estimate (z, roll, pitch).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.geometry import wrap
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.particles import Mode
from liploc_ros.localization.sequence_config import SequenceConfig

__all__ = ["mode_covariance", "pose_on_map"]


def pose_on_map(field: MapField, xyyaw: np.ndarray) -> np.ndarray:
    """4 x 4 pose: x, y, yaw as given; z, roll, pitch from the nearest entry facing yaw."""
    database = field.database
    k = min(field.per_keyframe, len(field))
    _, near = field.tree.query(xyyaw[:2], k=k)
    near = np.atleast_1d(near)
    nearest = int(near[np.argmin(np.abs(wrap(field.yaw[near] - xyyaw[2])))])
    _, pitch, roll = Rotation.from_quat(database.orientations[nearest]).as_euler("ZYX")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("ZYX", [xyyaw[2], pitch, roll]).as_matrix()
    T[:2, 3] = xyyaw[:2]
    T[2, 3] = database.positions[nearest, 2]
    return T


def mode_covariance(mode: Mode, config: SequenceConfig, floors: LocalizerConfig) -> np.ndarray:
    """6 x 6 over x y z roll pitch yaw: the mode's spread plus the extra and floor terms."""
    std = floors.std_floors
    cov = np.zeros((6, 6))
    block = [0, 1, 5]
    cov[np.ix_(block, block)] = mode.covariance
    cov[0, 0] += config.extra_position_std_m**2
    cov[1, 1] += config.extra_position_std_m**2
    cov[5, 5] += math.radians(config.extra_yaw_std_deg) ** 2
    for axis in (2, 3, 4):
        cov[axis, axis] += std[axis] ** 2
    return cov
