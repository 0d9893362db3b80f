"""An operator's initial pose (RViz "2D Pose Estimate", nav2's ``set_initial_pose``) into
sequence mode's filter: the message checked, brought into the map frame, and our own
``/initialpose`` output told apart from it.

- **Checks** (as AMCL's): finite position, a unit orientation quaternion (within 1 %, then
  normalised), a finite covariance with no negative variance. A bad message is refused
  with a warning naming what is wrong.
- **Frame**: ``header.frame_id`` equal to the map frame, or empty, is taken as is. Another
  frame is transformed through tf (the node's shared buffer, newest transform) where tf2_ros
  is installed; the covariance is rotated with it. Without tf2_ros, or without that
  transform, the pose is refused with a warning naming the frame.
- **Our own output**: rclpy's MessageInfo carries no publisher gid (Jazzy: source and
  received timestamps, sequence numbers) and a Publisher shows none either, so the node
  cannot drop its own messages by sender. It remembers what it sent on ``initialpose_topic``
  instead (:class:`SentPoses`) and drops a received message equal to one of them: stamp,
  frame, pose and covariance, field for field. Only a copy of our own output matches.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import numpy as np

from liploc_ros.datasets.tf_tree import normalize_frame
from liploc_ros.errors import LiplocError
from liploc_ros.ros import conversions as conv

__all__ = ["InitialPoseError", "SentPoses", "initial_pose", "message_key"]


class InitialPoseError(LiplocError):
    """An initial pose the node refuses; the message says why."""


def message_key(msg: Any) -> tuple:
    """Everything a PoseWithCovarianceStamped holds, as a hashable tuple."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return (
        msg.header.stamp.sec,
        msg.header.stamp.nanosec,
        normalize_frame(msg.header.frame_id),
        (p.x, p.y, p.z, q.x, q.y, q.z, q.w),
        tuple(float(c) for c in msg.pose.covariance),
    )


class SentPoses:
    """The last few initial poses this node published (thread-safe)."""

    def __init__(self, keep: int = 8) -> None:
        self._keys: deque[tuple] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, msg: Any) -> None:
        with self._lock:
            self._keys.append(message_key(msg))

    def __contains__(self, msg: Any) -> bool:
        key = message_key(msg)
        with self._lock:
            return key in self._keys


def _checked(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """T (4x4) and the 6x6 covariance of a PoseWithCovarianceStamped, or InitialPoseError."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    position = [p.x, p.y, p.z]
    if not all(math.isfinite(v) for v in position):
        raise InitialPoseError(f"position {position} is not finite")
    quat = np.array([q.x, q.y, q.z, q.w], np.float64)
    norm = float(np.linalg.norm(quat)) if np.all(np.isfinite(quat)) else math.nan
    if not abs(norm - 1.0) <= 0.01:
        raise InitialPoseError(
            f"orientation (x y z w) {quat.tolist()} has norm {norm:.4g}, not a unit quaternion"
        )
    cov = np.asarray(msg.pose.covariance, np.float64).reshape(6, 6)
    if not np.all(np.isfinite(cov)):
        raise InitialPoseError("covariance is not finite")
    if np.any(np.diag(cov) < 0):
        raise InitialPoseError(f"covariance has a negative variance: {np.diag(cov).tolist()}")
    return conv.pose_to_matrix(msg.pose.pose), 0.5 * (cov + cov.T)  # quaternion normalised


def initial_pose(msg: Any, map_frame: str, tf: Any) -> tuple[np.ndarray, np.ndarray]:
    """T_map_base (4x4) and its covariance (6x6, x y z roll pitch yaw) from ``msg``.

    ``tf``: the node's :class:`~liploc_ros.ros.tf_listener.SharedTf` for a pose in another
    frame. InitialPoseError names what is wrong (a bad value, a frame tf cannot bring in).
    """
    T, cov = _checked(msg)
    frame = normalize_frame(msg.header.frame_id)
    if not frame or frame == normalize_frame(map_frame):
        return T, cov
    try:
        buffer = tf.buffer()
    except ImportError:
        raise InitialPoseError(
            f"it is in frame '{frame}', not the map frame '{map_frame}', and tf2_ros is not "
            "installed to transform it: send it in the map frame"
        ) from None
    from rclpy.time import Time

    try:
        transform = buffer.lookup_transform(map_frame, frame, Time())
    except Exception as err:  # tf2's exceptions: no such frame, no path, ...
        raise InitialPoseError(
            f"it is in frame '{frame}' and tf has no transform {map_frame} <- {frame}: {err}"
        ) from None
    T_map_frame = conv.transform_to_matrix(transform.transform)
    R = np.zeros((6, 6))
    R[:3, :3] = R[3:, 3:] = T_map_frame[:3, :3]
    return T_map_frame @ T, R @ cov @ R.T
