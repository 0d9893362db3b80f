"""Rigid transforms from/to ROS (translation, quaternion) and their interpolation in time.

Poses in a bag come at their own rate (/tf from an INS at 100 Hz, odometry at 10 Hz) and never
exactly at a scan's stamp, so every frame's pose is interpolated: rotation by SLERP
(scipy's :class:`~scipy.spatial.transform.Slerp`), translation linearly. Like tf2, we never
extrapolate: a stamp outside the samples, or inside a gap longer than ``max_gap``, has no pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from liploc_ros.errors import DatasetError

__all__ = [
    "PoseTrack",
    "make_transform",
    "make_transforms",
    "transform_to_quat",
]


def make_transform(translation: Sequence[float], quat_xyzw: Sequence[float]) -> np.ndarray:
    """4 x 4 float64 transform from a translation and a ROS (x, y, z, w) quaternion.

    The quaternion is normalised (bags carry slightly off-unit ones); a zero quaternion is an
    error rather than a silent identity.
    """
    return make_transforms(np.reshape(translation, (1, 3)), np.reshape(quat_xyzw, (1, 4)))[0]


def make_transforms(translations: np.ndarray, quats_xyzw: np.ndarray) -> np.ndarray:
    """(N, 4, 4) transforms from (N, 3) translations and (N, 4) (x, y, z, w) quaternions."""
    q = np.asarray(quats_xyzw, np.float64).reshape(-1, 4)
    norms = np.linalg.norm(q, axis=1)
    bad = ~np.isfinite(norms) | (norms < 1e-12)
    if bad.any():
        raise DatasetError(f"invalid quaternion {q[np.argmax(bad)].tolist()}")
    out = np.zeros((q.shape[0], 4, 4))
    out[:, :3, :3] = Rotation.from_quat(q).as_matrix()
    out[:, :3, 3] = np.asarray(translations, np.float64).reshape(-1, 3)
    out[:, 3, 3] = 1.0
    return out


def transform_to_quat(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(translation (3,), quaternion (x, y, z, w)) of a 4 x 4 rigid transform."""
    T = np.asarray(T, np.float64)
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


class PoseTrack:
    """A time series of rigid transforms that can be sampled at any stamp inside it.

    Samples may come unsorted and with repeated stamps (the last one wins), as /tf does when
    several publishers or a replayed bag overlap.
    """

    def __init__(
        self, stamps: np.ndarray, poses: np.ndarray, *, max_gap: float | None = None
    ) -> None:
        stamps = np.asarray(stamps, np.float64).reshape(-1)
        poses = np.asarray(poses, np.float64)
        if poses.shape != (stamps.size, 4, 4):
            raise DatasetError(
                f"pose track: {stamps.size} stamps but poses of shape {poses.shape}"
            )
        if stamps.size == 0:
            raise DatasetError("pose track has no samples")
        keep = np.isfinite(stamps) & np.isfinite(poses).all(axis=(1, 2))
        stamps, poses = stamps[keep], poses[keep]
        if stamps.size == 0:
            raise DatasetError("pose track has no finite samples")
        # stable sort, then keep the last sample of each stamp
        order = np.argsort(stamps, kind="stable")
        stamps, poses = stamps[order], poses[order]
        last = np.append(stamps[1:] != stamps[:-1], True)
        self.stamps = stamps[last]
        self._translations = poses[last, :3, 3]
        self._rotations = Rotation.from_matrix(poses[last, :3, :3])
        self._slerp = Slerp(self.stamps, self._rotations) if self.stamps.size > 1 else None
        self.max_gap = max_gap

    def __len__(self) -> int:
        return int(self.stamps.size)

    @property
    def start(self) -> float:
        return float(self.stamps[0])

    @property
    def end(self) -> float:
        return float(self.stamps[-1])

    def covers(self, stamps: np.ndarray | float) -> np.ndarray:
        """Which stamps lie inside the samples (ends included) and in no over-long gap."""
        t = np.atleast_1d(np.asarray(stamps, np.float64))
        inside = (t >= self.stamps[0]) & (t <= self.stamps[-1])
        if self.max_gap is not None and self.stamps.size > 1:
            first_after = np.searchsorted(self.stamps, t, side="left")
            exact = self.stamps[np.clip(first_after, 0, self.stamps.size - 1)] == t
            hi = np.clip(first_after, 1, self.stamps.size - 1)
            gap = self.stamps[hi] - self.stamps[hi - 1]
            inside &= exact | (gap <= self.max_gap)
        return inside

    def sample(self, stamps: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate at ``stamps``: ``(poses (M, 4, 4), valid (M,))``.

        Rows where ``valid`` is False (outside the coverage) are NaN.
        """
        t = np.atleast_1d(np.asarray(stamps, np.float64))
        valid = self.covers(t)
        out = np.full((t.size, 4, 4), np.nan)
        if not valid.any():
            return out, valid
        tv = t[valid]
        block = np.zeros((tv.size, 4, 4))
        block[:, 3, 3] = 1.0
        if self._slerp is None:  # one sample: valid only at its own stamp
            block[:, :3, :3] = self._rotations.as_matrix()[0]
            block[:, :3, 3] = self._translations[0]
        else:
            block[:, :3, :3] = self._slerp(tv).as_matrix()
            for axis in range(3):
                block[:, axis, 3] = np.interp(tv, self.stamps, self._translations[:, axis])
        out[valid] = block
        return out, valid

    def at(self, stamp: float) -> np.ndarray | None:
        """The pose at one stamp, or ``None`` outside the coverage."""
        poses, valid = self.sample(stamp)
        return poses[0] if valid[0] else None
