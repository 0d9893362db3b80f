"""A LiDAR-pose estimate re-expressed for the vehicle: T_map_base and its covariance.

The map stores LiDAR poses, so the localizer's estimate is ``T_map_lidar``; a vehicle stack
(robot_localization, nav2) wants the pose of ``base_link``:
``T_map_base = T_map_lidar @ inv(T_base_lidar)``.

The covariance is not simply carried over: with the LiDAR 1.73 m above base_link, a match
that differs in roll or pitch places base_link elsewhere than the LiDAR. It is recomputed
exactly as the estimate computes it (:func:`~liploc_ros.localization.estimate.pose_deltas`
and :func:`~liploc_ros.localization.estimate.weighted_covariance` with the config's floors),
from the very entries and weights the estimate used (:attr:`PoseEstimate.used`: on a map with
several crops per keyframe they are not the first retrieved ones), with each match's pose
moved to base_link. With an identity mount the result equals the estimate's covariance. An
estimate without matches to re-weight (the sequence filter's: its covariance is the posterior
mode's spread) has its covariance carried over to first order instead: a small rotation of
the LiDAR moves base_link by the lever arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liploc_ros.errors import MapError
from liploc_ros.geometry import invert_transform
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate, pose_deltas, weighted_covariance
from liploc_ros.mapdb import MapDatabase

__all__ = ["BasePose", "base_pose", "carried_covariance"]


@dataclass(frozen=True)
class BasePose:
    """A fix of base_link in the map."""

    #: 4 x 4 ``T_map_base``
    matrix: np.ndarray
    #: 6 x 6 over x y z roll pitch yaw (m, rad; about the map's axes), ROS row-major order
    covariance: np.ndarray


def base_pose(
    estimate: PoseEstimate,
    database: MapDatabase,
    T_base_lidar: np.ndarray,
    config: LocalizerConfig,
) -> BasePose:
    """``estimate`` (a fix) as base_link's pose; ValueError for an estimate without fix."""
    if not estimate.ok or estimate.pose is None or estimate.covariance is None:
        raise ValueError(f"estimate at {estimate.stamp:.9f} has no fix ({estimate.reason})")
    T_lidar_base = invert_transform(np.asarray(T_base_lidar, np.float64))
    best = np.asarray(estimate.pose, np.float64) @ T_lidar_base
    weights = np.asarray(estimate.weights, np.float64)
    used = np.asarray(estimate.used, np.int64)
    if weights.size == 0:  # not a weighted set of matches: nothing to re-weight
        lever = np.asarray(estimate.pose, np.float64)[:3, :3] @ T_lidar_base[:3, 3]
        return BasePose(best, carried_covariance(estimate.covariance, lever))
    if len(used) != len(weights) or (used < 0).any() or (used >= len(database)).any():
        raise MapError(
            f"estimate at {estimate.stamp:.9f}: {len(weights)} weights for the entries "
            f"{used.tolist()} of a {len(database)}-entry map"
        )
    poses = database.poses_at(used) @ T_lidar_base
    cov = weighted_covariance(pose_deltas(poses, best), weights, config.std_floors)
    return BasePose(best, cov)


def carried_covariance(covariance: np.ndarray, lever: np.ndarray) -> np.ndarray:
    """A LiDAR pose's 6 x 6 covariance carried to a point ``lever`` (map axes) away: a small
    rotation ``dtheta`` about the map's axes moves that point by ``dtheta x lever`` more
    than the LiDAR, and turns it alike (first order: ``J cov J^T``)."""
    x, y, z = np.asarray(lever, np.float64)
    J = np.eye(6)
    J[:3, 3:] = -np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    out = J @ np.asarray(covariance, np.float64) @ J.T
    return 0.5 * (out + out.T)
