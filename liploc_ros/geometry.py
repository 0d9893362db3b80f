"""Rigid and planar pose maths shared by the readers, the filter and the evaluation.

One copy of each: poses are 4 x 4 float64 ``T_parent_child`` matrices, planar poses are
(N, 3) x, y, yaw (radians, counter-clockwise about z), motions are body-frame steps.
Nothing here imports another part of the package, so every layer may use it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "integrate_steps",
    "invert_transform",
    "planar",
    "relative_steps",
    "se2_matrices",
    "wrap",
    "wrap_deg",
    "yaw_of",
]


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transform(s) (..., 4, 4) by transposing the rotation."""
    T = np.asarray(T, np.float64)
    out = np.zeros_like(T)
    R_inv = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = R_inv
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", R_inv, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


_TWO_PI = 2.0 * math.pi


def yaw_of(rotations: np.ndarray) -> np.ndarray:
    """Heading (radians) of the x axis of (..., 3, 3) rotations or (..., 4, 4) poses,
    projected to the ground plane."""
    r = np.asarray(rotations, np.float64)
    return np.arctan2(r[..., 1, 0], r[..., 0, 0])


def wrap(angle: np.ndarray | float) -> np.ndarray:
    """Angles (radians) wrapped to [-pi, pi)."""
    a = np.asarray(angle, np.float64)
    # floor, not %: numpy's float modulo is four times slower, and the filter wraps its
    # particles' headings a dozen times a frame
    return a - _TWO_PI * np.floor((a + math.pi) / _TWO_PI)


def wrap_deg(angle: np.ndarray | float) -> np.ndarray:
    """Angles in degrees wrapped into (-180, 180]."""
    out = np.mod(np.asarray(angle, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(out == -180.0, 180.0, out)


def planar(poses: np.ndarray) -> np.ndarray:
    """(N, 3) x, y, yaw of 4 x 4 poses (yaw of the x axis projected to the ground plane)."""
    p = np.asarray(poses, np.float64).reshape(-1, 4, 4)
    return np.stack([p[:, 0, 3], p[:, 1, 3], yaw_of(p)], axis=1)


def se2_matrices(xyyaw: np.ndarray, z: float = 0.0) -> np.ndarray:
    """(N, 4, 4) level poses from (N, 3) x, y, yaw, at height ``z``."""
    v = np.asarray(xyyaw, np.float64).reshape(-1, 3)
    out = np.zeros((len(v), 4, 4))
    c, s = np.cos(v[:, 2]), np.sin(v[:, 2])
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
    out[:, 2, 2] = out[:, 3, 3] = 1.0
    out[:, 0, 3], out[:, 1, 3], out[:, 2, 3] = v[:, 0], v[:, 1], z
    return out


def relative_steps(xyyaw: np.ndarray) -> np.ndarray:
    """(N-1, 3) motion between consecutive planar poses, in the earlier pose's frame."""
    v = np.asarray(xyyaw, np.float64)
    d = v[1:, :2] - v[:-1, :2]
    c, s = np.cos(v[:-1, 2]), np.sin(v[:-1, 2])
    fwd = c * d[:, 0] + s * d[:, 1]
    left = -s * d[:, 0] + c * d[:, 1]
    dyaw = np.angle(np.exp(1j * (v[1:, 2] - v[:-1, 2])))
    return np.stack([fwd, left, dyaw], axis=1)


def integrate_steps(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(N+1, 3) planar poses from ``start`` (3,) and (N, 3) body-frame steps."""
    out = np.empty((len(steps) + 1, 3))
    out[0] = start
    x, y, yaw = (float(v) for v in start)
    for i, (fwd, left, dyaw) in enumerate(np.asarray(steps, np.float64), start=1):
        c, s = math.cos(yaw), math.sin(yaw)
        x += c * fwd - s * left
        y += s * fwd + c * left
        yaw = math.atan2(math.sin(yaw + dyaw), math.cos(yaw + dyaw))
        out[i] = (x, y, yaw)
    return out
