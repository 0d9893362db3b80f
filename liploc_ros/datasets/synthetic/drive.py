"""A traversal of a synthetic town as an :class:`IndexedSource` of camera + LiDAR frames.

Frames are rendered lazily in :meth:`SyntheticDrive.frame` from (town, traversal, index)
alone, so a drive is random-access, reproducible bit for bit and usable directly as a
training dataset; poses and stamps are known without rendering anything.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from liploc_ros.datasets.base import Calibration, Frame, IndexedSource
from liploc_ros.datasets.odometry import simulate_odometry
from liploc_ros.datasets.synthetic.camera import CameraRender, PinholeCamera, render_camera
from liploc_ros.datasets.synthetic.config import RigConfig, TownConfig, TraversalConfig
from liploc_ros.datasets.synthetic.lidar import LidarModel, LidarRender, ScanWindow, render_lidar
from liploc_ros.datasets.synthetic.lighting import Light
from liploc_ros.datasets.synthetic.seeding import SALT_CAMERA, SALT_LIDAR, rng
from liploc_ros.datasets.synthetic.town import Town, make_town
from liploc_ros.datasets.synthetic.trajectory import plan_traversal
from liploc_ros.datasets.synthetic.traversals import default_traversal
from liploc_ros.errors import ConfigError

#: camera optical axes (x right, y down, z forward) in the LiDAR frame (x fwd, y left, z up)
R_LIDAR_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rig_calibration(rig: RigConfig) -> Calibration:
    """The rig's camera intrinsics and ``T_lidar_camera``."""
    camera = PinholeCamera(rig)
    T = np.eye(4)
    T[:3, :3] = R_LIDAR_CAMERA
    T[:3, 3] = rig.camera_offset
    return Calibration(
        camera_matrix=camera.K.copy(), image_size=(camera.width, camera.height), T_lidar_camera=T
    )


class SyntheticDrive(IndexedSource):
    """``frames`` frames of one traversal of ``town`` seen by ``rig``; with ``lidar_window``,
    scans hold only the points of that window (the full scan's points there, no others)."""

    #: always known: the rig is synthetic
    calibration: Calibration

    def __init__(
        self,
        town: Town,
        traversal: int | TraversalConfig = 0,
        frames: int = 300,
        rig: RigConfig | None = None,
        lidar_window: ScanWindow | None = None,
    ) -> None:
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ConfigError(f"a synthetic drive needs frames >= 1, got {frames!r}")
        if not isinstance(traversal, TraversalConfig):
            traversal = default_traversal(traversal, town.seed)
        self.town = town
        self.traversal = traversal
        self.rig = rig or RigConfig()
        self.name = f"synthetic/seed{town.seed}/t{traversal.index}"
        rate = self.rig.rate_hz
        path = town.route((frames - 1) * traversal.speed / rate)
        self.trajectory = plan_traversal(
            path, traversal, frames, rate, town.config.lane_width, town.seed
        )
        self._poses = self.trajectory.poses(self.rig.lidar_height)
        self._poses.setflags(write=False)
        self._odometry = simulate_odometry(self._poses, (town.seed, traversal.index))
        self._odometry.setflags(write=False)
        #: every object this traversal sees (static ones and its own parked cars)
        self.scene = town.scene(traversal.index, traversal.parked_car_change)
        self.camera = PinholeCamera(self.rig)
        self.lidar = LidarModel(self.rig, lidar_window)
        self.light = Light.of(traversal)
        self.calibration = rig_calibration(self.rig)

    def __len__(self) -> int:
        return len(self.trajectory.s)

    def __repr__(self) -> str:
        return f"SyntheticDrive({self.name!r}, frames={len(self)})"

    @property
    def stamps(self) -> np.ndarray:
        return self.trajectory.stamps.copy()

    @property
    def poses(self) -> np.ndarray:
        return self._poses.copy()

    @property
    def odometry(self) -> np.ndarray:
        """Simulated wheel odometry with drift (:mod:`liploc_ros.datasets.odometry`)."""
        return self._odometry.copy()

    def _check(self, index: int) -> int:
        if isinstance(index, bool) or not 0 <= int(index) < len(self):
            raise IndexError(f"{self.name}: frame {index} out of range (0..{len(self) - 1})")
        return int(index)

    def camera_pose(self, index: int) -> np.ndarray:
        """T_map_camera (optical frame) of frame ``index``."""
        return self._poses[self._check(index)] @ self.calibration.T_lidar_camera

    def render_camera(self, index: int) -> CameraRender:
        """The camera image with its ground truth (depth, material) for frame ``index``."""
        index = self._check(index)
        T = self.camera_pose(index)
        yaw = float(self.trajectory.yaw[index])
        return render_camera(
            self.scene,
            self.town.roads,
            self.camera,
            (T[0, 3], T[1, 3]),
            T[2, 3],
            yaw,
            self.light,
            rng(self.town.seed, SALT_CAMERA, self.traversal.index, index),
            self.rig.camera_max_range,
            self.rig.image_noise,
        )

    def render_lidar(self, index: int) -> LidarRender:
        """The LiDAR scan with per-point materials for frame ``index``."""
        index = self._check(index)
        T = self._poses[index]
        return render_lidar(
            self.scene,
            self.town.roads,
            self.lidar,
            (T[0, 3], T[1, 3]),
            T[2, 3],
            float(self.trajectory.yaw[index]),
            rng(self.town.seed, SALT_LIDAR, self.traversal.index, index),
        )

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        index = self._check(index)
        return Frame(
            index=index,
            stamp=float(self.trajectory.stamps[index]),
            image=self.render_camera(index).image if image else None,
            points=self.render_lidar(index).points if points else None,
            pose=self._poses[index].copy(),
            odometry=self._odometry[index].copy(),
            meta={
                "odometry": "simulated",
                "town_seed": self.town.seed,
                "traversal": self.traversal.index,
                "route_s": float(self.trajectory.s[index]),
            },
        )


def make_drive(
    seed: int,
    traversal: int | TraversalConfig = 0,
    frames: int = 300,
    *,
    rig: RigConfig | None = None,
    lidar_window: ScanWindow | None = None,
    **town_options: object,
) -> SyntheticDrive:
    """Traversal ``traversal`` of town ``seed``; ``town_options`` are other TownConfig fields."""
    names = {f.name for f in dataclasses.fields(TownConfig)} - {"seed"}
    unknown = sorted(set(town_options) - names)
    if unknown:
        raise ConfigError(
            f"unknown town option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    town = make_town(TownConfig(seed=seed, **town_options))  # type: ignore[arg-type]
    return SyntheticDrive(town, traversal, frames, rig, lidar_window)
