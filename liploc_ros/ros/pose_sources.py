"""Where a live scan's pose comes from: tf2, or a buffer of pose-topic messages.

Both answer the same question, "T_map_lidar at this stamp, for this LiDAR frame?", with one
of three outcomes, so that the map builder can queue scans whose pose has not arrived yet:

- a 4 x 4 float64 pose: use it;
- ``None``: not available *yet* (the pose stream has not reached the stamp): ask again later;
- :class:`NoPoseError`: never available (older than the buffer, inside a gap in the poses).

Neither lookup blocks: waiting is the caller's business (a scan waits up to ``pose_timeout``
seconds in :class:`liploc_ros.ros.live_map.LiveMapBuilder`), so no executor thread is ever
parked inside a tf2 timeout.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.datasets.interpolation import PoseTrack
from liploc_ros.datasets.tf_tree import normalize_frame
from liploc_ros.errors import ConfigError, LiplocError

__all__ = [
    "NoPoseError",
    "PoseBuffer",
    "PoseLookup",
    "TfPoseLookup",
    "extrinsic_matrix",
    "tf_pose_lookup",
]


class NoPoseError(LiplocError):
    """A scan's stamp will never have a pose (before the first sample, inside a gap)."""


class PoseLookup(Protocol):
    def lookup(self, frame_id: str, stamp: float) -> np.ndarray | None:
        """T_map_lidar of ``frame_id`` at ``stamp``; None: not yet; NoPoseError: never."""
        ...


def extrinsic_matrix(values: Any) -> np.ndarray:
    """A 4 x 4 rigid transform from 6 values (x, y, z, roll, pitch, yaw; metres, radians,
    fixed-axis roll-pitch-yaw as in REP-103 and tf2's static_transform_publisher) or from 16
    (a row-major 4 x 4 matrix)."""
    v = np.asarray(values, np.float64).reshape(-1)
    if not np.isfinite(v).all():
        raise ConfigError(f"extrinsic has non-finite values: {v.tolist()}")
    if v.size == 6:
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("xyz", v[3:]).as_matrix()
        T[:3, 3] = v[:3]
        return T
    if v.size == 16:
        T = v.reshape(4, 4)
        R = T[:3, :3]
        if not (
            np.allclose(T[3], [0, 0, 0, 1])
            and np.allclose(R @ R.T, np.eye(3), atol=1e-6)
            and np.linalg.det(R) > 0
        ):
            raise ConfigError(
                "extrinsic 4 x 4 matrix is not a rigid transform (rotation not orthonormal "
                "or last row not 0 0 0 1)"
            )
        return T.copy()
    raise ConfigError(
        f"extrinsic needs 6 values (x y z roll pitch yaw) or 16 (a row-major 4 x 4 matrix), "
        f"got {v.size}"
    )


class PoseBuffer:
    """Recent samples of a pose topic (Odometry, PoseStamped, ...), interpolated to scans.

    A pose between two samples is interpolated (SLERP + linear, by
    :class:`~liploc_ros.datasets.interpolation.PoseTrack`) unless the samples are more than
    ``max_gap`` seconds apart; never extrapolated. ``sensor_to_lidar`` is the fixed transform
    from the frame the topic gives the pose of (e.g. base_link) to the LiDAR, right-multiplied
    onto every sample. Samples older than ``history`` seconds before the newest are forgotten.
    Thread-safe: the executor adds, the map worker looks up.
    """

    def __init__(
        self,
        *,
        max_gap: float = 1.0,
        history: float = 60.0,
        sensor_to_lidar: np.ndarray | None = None,
    ) -> None:
        if not max_gap > 0 or not history > 0:
            raise ConfigError(f"max_gap ({max_gap}) and history ({history}) must be positive")
        self.max_gap = float(max_gap)
        self.history = float(history)
        self.sensor_to_lidar = np.eye(4) if sensor_to_lidar is None else sensor_to_lidar
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest(self) -> float | None:
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def add(self, stamp: float, pose: np.ndarray) -> None:
        """Record one sample; samples may come out of order, a repeated stamp replaces."""
        pose = np.asarray(pose, np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all() or not np.isfinite(stamp):
            raise ConfigError(f"pose sample at {stamp} is not a finite 4 x 4 transform")
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp)
            if i < len(self._stamps) and self._stamps[i] == stamp:
                self._poses[i] = pose
            else:
                self._stamps.insert(i, float(stamp))
                self._poses.insert(i, pose)
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.history)
            if cut:
                del self._stamps[:cut], self._poses[:cut]

    def lookup(self, frame_id: str, stamp: float) -> np.ndarray | None:
        """T_map_lidar at ``stamp`` (``frame_id`` is not used: the topic names one frame)."""
        del frame_id
        with self._lock:
            if not self._stamps or stamp > self._stamps[-1]:
                return None
            if stamp < self._stamps[0]:
                raise NoPoseError(
                    f"stamp {stamp:.3f} s is older than the oldest pose sample kept "
                    f"({self._stamps[0]:.3f} s)"
                )
            i = bisect.bisect_left(self._stamps, stamp)
            if self._stamps[i] == stamp:
                pose = self._poses[i]
            else:
                t0, t1 = self._stamps[i - 1], self._stamps[i]
                if t1 - t0 > self.max_gap:
                    raise NoPoseError(
                        f"stamp {stamp:.3f} s falls in a {t1 - t0:.2f} s gap between pose "
                        f"samples (max_pose_gap {self.max_gap} s)"
                    )
                track = PoseTrack(
                    np.array([t0, t1]), np.stack([self._poses[i - 1], self._poses[i]])
                )
                between = track.at(stamp)
                assert between is not None  # t0 <= stamp <= t1: inside the track
                pose = between
        return pose @ self.sensor_to_lidar


class TfPoseLookup:
    """Poses from a tf2 buffer: the transform ``map_frame`` <- the scan's own frame.

    ``buffer`` is a ``tf2_ros.Buffer`` (fed by a TransformListener), ``errors`` the tf2
    exceptions that mean "not (yet) available", ``to_time`` turns float seconds into the
    buffer's time type. The lookup never waits (timeout 0): a scan whose transform is not
    there yet is asked for again by the caller, until its own ``pose_timeout``.
    """

    def __init__(
        self,
        buffer: Any,
        map_frame: str,
        *,
        errors: tuple[type[BaseException], ...],
        to_time: Callable[[float], Any],
        to_matrix: Callable[[Any], np.ndarray],
    ) -> None:
        self.buffer = buffer
        self.map_frame = normalize_frame(map_frame)
        self._errors = errors
        self._to_time = to_time
        self._to_matrix = to_matrix

    def lookup(self, frame_id: str, stamp: float) -> np.ndarray | None:
        frame = normalize_frame(frame_id)
        if not frame:
            raise NoPoseError("the scan has no header.frame_id to look up in tf")
        try:
            msg = self.buffer.lookup_transform(self.map_frame, frame, self._to_time(stamp))
        except self._errors:
            return None
        return self._to_matrix(msg.transform)


def tf_pose_lookup(node: Any, map_frame: str) -> tuple[TfPoseLookup, Any] | None:
    """A :class:`TfPoseLookup` fed by a tf2_ros TransformListener on ``node``, and the
    listener (keep it alive); None where tf2_ros is not installed (a pip-only install)."""
    try:
        import tf2_ros
    except ImportError:
        return None
    from rclpy.time import Time

    from liploc_ros.ros.conversions import transform_to_matrix

    buffer = tf2_ros.Buffer(node=node)
    listener = tf2_ros.TransformListener(buffer, node)
    lookup = TfPoseLookup(
        buffer,
        map_frame,
        errors=(tf2_ros.TransformException,),
        to_time=lambda t: Time(nanoseconds=round(t * 1e9)),
        to_matrix=transform_to_matrix,
    )
    return lookup, listener
