"""A small in-memory IndexedSource for the reader and writer tests (bags, KITTI, KITTI-360),
with the pose and calibration builders it uses, and a line editor for spoiling written files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from liploc_ros.datasets.base import Calibration, Frame, IndexedSource


def rewrite_line(path: Path, lineno: int, text: str) -> None:
    """Line ``lineno`` (from 1) of a text file replaced by ``text``."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def pose(yaw_deg: float, xyz: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    out[:3, 3] = xyz
    return out


def calibration(width: int = 120, height: int = 40) -> Calibration:
    T_lidar_camera = np.eye(4)
    # camera optical frame (z forward, x right, y down) in the LiDAR frame (x fwd, z up)
    T_lidar_camera[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    T_lidar_camera[:3, 3] = (0.27, -0.08, -0.06)
    K = np.array([[60.0, 0, width / 2], [0, 60.0, height / 2], [0, 0, 1]])
    return Calibration(camera_matrix=K, image_size=(width, height), T_lidar_camera=T_lidar_camera)


#: the rig FakeSource has unless told otherwise
RIG = calibration()


def planar_curve(i: int) -> np.ndarray:
    """FakeSource's default path: a yawing curve near the origin."""
    return pose(12.0 * i + 5, (1.5 * i, 0.2 * i * i, 0.01 * i))


class FakeSource(IndexedSource):
    """``n`` frames of random 120 x 40 images and clouds along ``curve`` (frame index -> 4x4
    pose) at 10 Hz from ``start``, each stamp late by up to ``jitter`` s (random)."""

    def __init__(
        self,
        n: int = 5,
        *,
        seed: int = 0,
        start: float = 1_700_000_000.25,
        jitter: float = 0.0,
        calibration: Calibration | None = RIG,
        curve: Callable[[int], np.ndarray] = planar_curve,
        posed: bool = True,
        unposed: tuple[int, ...] = (),
        points: int | tuple[int, int] = 200,
        smooth: bool = False,
        fail_at: int | None = None,
    ) -> None:
        """``points``: a count, or a (low, high) range of counts per scan; ``posed=False``:
        no poses at all, ``unposed``: these frames without a pose; ``smooth``: gradient
        images (JPEG keeps them within a few grey levels); ``fail_at``: reading that frame
        raises RuntimeError."""
        rng = np.random.default_rng(seed)
        height, width = 40, 120
        self.name = "fake"
        self.calibration = calibration
        self.fail_at = fail_at
        if smooth:
            y, x = np.mgrid[0:height, 0:width]
            self.images = [
                np.stack([x * 2, y * 5, x + y + 10 * i], -1).clip(0, 255).astype(np.uint8)
                for i in range(n)
            ]
        else:
            self.images = list(rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8))
        counts = [
            points if isinstance(points, int) else int(rng.integers(*points)) for _ in range(n)
        ]
        self.points = [
            (rng.normal(size=(count, 4)) * [10, 10, 1, 0.3]).astype(np.float32) for count in counts
        ]
        self._stamps = start + 0.1 * np.arange(n)
        if jitter:
            self._stamps += rng.uniform(0, jitter, n)
        self._poses = np.stack([curve(i) for i in range(n)]) if posed else None
        if self._poses is not None:
            self._poses[list(unposed)] = np.nan

    def __len__(self) -> int:
        return len(self.images)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        if index == self.fail_at:
            raise RuntimeError(f"simulated failure at frame {index}")
        pose_i = None if self._poses is None else self._poses[index]
        return Frame(
            index=index,
            stamp=float(self._stamps[index]),
            image=self.images[index].copy() if image else None,
            points=self.points[index].copy() if points else None,
            pose=None if pose_i is None or np.isnan(pose_i).any() else pose_i.copy(),
        )

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps.copy()

    @property
    def poses(self) -> np.ndarray | None:
        return None if self._poses is None else self._poses.copy()
