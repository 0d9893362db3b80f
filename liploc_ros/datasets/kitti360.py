"""KITTI-360 drives: read and write the dataset's folder layout (perspective camera 0 only).

Layout (``<drive>`` = ``2013_05_28_drive_<4-digit>_sync``)::

    <root>/data_2d_raw/<drive>/image_00/data_rect/<10-digit>.png   rectified left camera
    <root>/data_2d_raw/<drive>/image_00/timestamps.txt
    <root>/data_3d_raw/<drive>/velodyne_points/data/<10-digit>.bin float32 N x 4
    <root>/data_3d_raw/<drive>/velodyne_points/timestamps.txt
    <root>/data_poses/<drive>/poses.txt          frame index + 3 x 4 T_world_pose (some frames)
    <root>/data_poses/<drive>/cam0_to_world.txt  frame index + 4 x 4 T_world_cam0(rectified)
    <root>/calibration/calib_cam_to_velo.txt     3 x 4 T_velo_cam0 (unrectified camera 0)
    <root>/calibration/calib_cam_to_pose.txt     "image_00:" 3 x 4 T_pose_cam0 (unrectified)
    <root>/calibration/perspective.txt           "P_rect_00:", "R_rect_00:", "S_rect_00:" ...

The world frame is already z up, so the LiDAR poses are::

    T_world_lidar = T_world_pose @ T_pose_cam0 @ inv(T_velo_cam0)            (poses.txt)
    T_world_lidar = T_world_cam0rect @ R_rect_00 @ inv(T_velo_cam0)          (cam0_to_world)

poses.txt is used when present; cam0_to_world.txt is the fallback. Only some frames have a
pose: the others get ``pose`` None and NaN rows in ``poses``. Frame numbers (``frame_ids``,
``Frame.meta["frame_id"]``) are the 10-digit file numbers; ``Frame.index`` is the 0-based
position in the source. Stamps are seconds since the Unix epoch, reading the timestamps as
UTC (the files do not say which zone they are in).

KITTI-360 records no odometry: a posed drive gets one simulated from its poses
(:mod:`liploc_ros.datasets.odometry_sources`, seeded by the drive name, labelled
``Frame.meta["odometry"] = "simulated"``); unposed frames have none.

This module reads a drive; :mod:`~liploc_ros.datasets.kitti360_writer` writes one and
:mod:`~liploc_ros.datasets.kitti360_names` holds the drive names and timestamp formats.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from liploc_ros.datasets.base import Calibration, Frame, IndexedSource
from liploc_ros.datasets.frame_files import (
    check_scan_sizes,
    list_frame_files,
    read_image,
    read_scan,
)
from liploc_ros.datasets.kitti360_names import (
    FRAME_DIGITS,
    drive_name,
    format_timestamp,
    parse_timestamp,
)
from liploc_ros.datasets.kitti360_writer import NOMINAL_T_POSE_CAM0, write_kitti360
from liploc_ros.datasets.odometry import DEFAULT_ODOMETRY_ERRORS, OdometryErrorModel
from liploc_ros.datasets.odometry_sources import simulated_from_poses, stable_seed
from liploc_ros.datasets.textfiles import (
    KeyValueFile,
    parse_numbers,
    read_number_rows,
    read_text_lines,
    rows_to_matrices,
)
from liploc_ros.errors import DatasetError

__all__ = [
    "FALLBACK_PERIOD_S",
    "NOMINAL_T_POSE_CAM0",
    "Kitti360",
    "drive_name",
    "format_timestamp",
    "parse_timestamp",
    "write_kitti360",
]

log = logging.getLogger(__name__)

#: frame period used for stamps when a drive has no timestamps.txt (10 Hz)
FALLBACK_PERIOD_S = 0.1


def _rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _read_flat_matrix(path: Path, what: str) -> np.ndarray:
    """A file holding one 3 x 4 (or 4 x 4) matrix as 12 (16) numbers over any lines."""
    values: list[float] = []
    for lineno, line in enumerate(read_text_lines(path, what), start=1):
        values += parse_numbers(line.split(), path, lineno)
    if len(values) not in (12, 16):
        raise DatasetError(
            f"{path}: expected 12 numbers (a 3 x 4 matrix) for {what}, found {len(values)}"
        )
    return rows_to_matrices(np.asarray(values).reshape(1, -1))[0]


class Kitti360(IndexedSource):
    """One KITTI-360 drive (camera ``image_00`` rectified + velodyne), loaded lazily: files
    are listed and text files parsed at construction; an image or scan is read only when its
    frame is asked for.

    With ``strict`` (the default) the image and scan folders must hold the same frames and
    every pose must refer to one of them; ``strict=False`` keeps the frames found in both
    folders and drops the rest with a warning (needed for drive 0002, whose first 4391 scans
    KITTI-360 holds out as a test set while its images are there). ``odometry_errors``: the
    error model of the simulated odometry (None: no odometry).
    """

    def __init__(
        self,
        root: str | Path,
        drive: str | int,
        *,
        strict: bool = True,
        odometry_errors: OdometryErrorModel | None = DEFAULT_ODOMETRY_ERRORS,
    ) -> None:
        self.odometry_errors = odometry_errors
        self._odometry: np.ndarray | None = None
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"KITTI-360 folder does not exist: {self.root}")
        self.drive = drive_name(drive)
        self.name = f"kitti360/{self.drive}"
        self.strict = strict
        camera_dir = self.root / "data_2d_raw" / self.drive / "image_00"
        velodyne_dir = self.root / "data_3d_raw" / self.drive / "velodyne_points"

        images = list_frame_files(
            camera_dir / "data_rect", ".png", FRAME_DIGITS, "image_00 camera"
        )
        scans = list_frame_files(velodyne_dir / "data", ".bin", FRAME_DIGITS, "velodyne")
        self._images, self._scans = self._pair_frames(images, scans)
        check_scan_sizes(self._scans)
        self.frame_ids = np.array([int(p.stem) for p in self._images], dtype=np.int64)
        self.frame_ids.flags.writeable = False

        calib_dir = self.root / "calibration"
        self.T_velo_cam0, R_rect, self.calibration = self._read_calibration(calib_dir)
        self._stamps = self._read_stamps(camera_dir, velodyne_dir)
        self._stamps.flags.writeable = False

        self.imu_poses: np.ndarray | None = None
        self._poses: np.ndarray | None = None
        poses_dir = self.root / "data_poses" / self.drive
        self.poses_path: Path | None = None
        if (poses_dir / "poses.txt").is_file():
            self.poses_path = poses_dir / "poses.txt"
            T_pose_cam0 = self._read_cam_to_pose(calib_dir / "calib_cam_to_pose.txt")
            imu = self._read_indexed_poses(self.poses_path, 12)
            self.imu_poses = imu
            self.imu_poses.flags.writeable = False
            self._poses = imu @ (T_pose_cam0 @ np.linalg.inv(self.T_velo_cam0))
        elif (poses_dir / "cam0_to_world.txt").is_file():
            self.poses_path = poses_dir / "cam0_to_world.txt"
            cam0 = self._read_indexed_poses(self.poses_path, 16)
            self._poses = cam0 @ (R_rect @ np.linalg.inv(self.T_velo_cam0))
        else:
            log.info(
                "%s: no poses (no poses.txt or cam0_to_world.txt in %s)", self.name, poses_dir
            )
        if self._poses is not None:
            self._poses.flags.writeable = False

    # -- discovery and validation ---------------------------------------------------------

    def _pair_frames(self, images: list[Path], scans: list[Path]) -> tuple[list[Path], list[Path]]:
        image_ids = {p.stem: p for p in images}
        scan_ids = {p.stem: p for p in scans}
        common = sorted(image_ids.keys() & scan_ids.keys())
        if len(common) != len(images) or len(common) != len(scans):
            only_images = sorted(image_ids.keys() - scan_ids.keys())
            only_scans = sorted(scan_ids.keys() - image_ids.keys())
            detail = (
                f"{len(images)} images in {images[0].parent if images else 'data_rect/'} but "
                f"{len(scans)} scans in {scans[0].parent if scans else 'velodyne data/'}"
                f" ({len(only_images)} frame(s) only as images"
                + (f", first {only_images[0]}" if only_images else "")
                + f"; {len(only_scans)} only as scans"
                + (f", first {only_scans[0]}" if only_scans else "")
                + ")"
            )
            if self.strict:
                raise DatasetError(
                    f"{self.name}: frame counts disagree: {detail}; pass strict=False to keep "
                    "the frames found in both (KITTI-360 holds out some scans, e.g. of drive 0002)"
                )
            log.warning(
                "%s: keeping the %d frames found in both: %s", self.name, len(common), detail
            )
        if not common:
            raise DatasetError(f"{self.name}: no frames with both an image and a scan")
        return [image_ids[s] for s in common], [scan_ids[s] for s in common]

    def _read_calibration(self, calib_dir: Path) -> tuple[np.ndarray, np.ndarray, Calibration]:
        T_velo_cam0 = _read_flat_matrix(
            calib_dir / "calib_cam_to_velo.txt", "KITTI-360 camera 0 -> velodyne calibration"
        )
        path = calib_dir / "perspective.txt"
        perspective = KeyValueFile.read(path, "KITTI-360 perspective camera calibration")
        P = perspective.matrix("P_rect_00", 3, 4)
        R_rect = np.eye(4)
        R_rect[:3, :3] = perspective.matrix("R_rect_00", 3, 3)
        width, height = perspective.floats("S_rect_00", 2)
        lineno = perspective.entries["S_rect_00"][0]
        if width != int(width) or height != int(height) or width < 1 or height < 1:
            raise DatasetError(f"{path}:{lineno}: S_rect_00 must be two positive whole numbers")
        K = P[:, :3]
        if abs(np.linalg.det(K)) < 1e-12 or abs(np.linalg.det(T_velo_cam0)) < 1e-12:
            raise DatasetError(f"{calib_dir}: P_rect_00 or calib_cam_to_velo is singular")
        # x_rect = R_rect @ x_cam0 and P = K @ [I | b]: the image camera sees x_rect + b.
        b = np.linalg.solve(K, P[:, 3])
        T_lidar_camera = T_velo_cam0 @ np.linalg.inv(R_rect) @ _rigid(np.eye(3), -b)
        calibration = Calibration(
            camera_matrix=K.copy(),
            image_size=(int(width), int(height)),
            T_lidar_camera=T_lidar_camera,
        )
        return T_velo_cam0, R_rect, calibration

    @staticmethod
    def _read_cam_to_pose(path: Path) -> np.ndarray:
        table = KeyValueFile.read(path, "KITTI-360 camera -> pose calibration")
        return rows_to_matrices(table.floats("image_00", 12).reshape(1, 12))[0]

    def _read_stamps(self, camera_dir: Path, velodyne_dir: Path) -> np.ndarray:
        for path in (camera_dir / "timestamps.txt", velodyne_dir / "timestamps.txt"):
            if path.is_file():
                break
        else:
            log.warning(
                "%s: no timestamps.txt for image_00 or velodyne; using stamps of frame "
                "number * %.1f s",
                self.name,
                FALLBACK_PERIOD_S,
            )
            return self.frame_ids.astype(np.float64) * FALLBACK_PERIOD_S
        stamps = []
        for lineno, line in enumerate(read_text_lines(path, "KITTI-360 timestamps"), start=1):
            if not line.strip():
                continue
            try:
                stamps.append(parse_timestamp(line))
            except ValueError as err:
                raise DatasetError(
                    f"{path}:{lineno}: bad timestamp {line.strip()!r} "
                    "(expected YYYY-MM-DD HH:MM:SS.fraction)"
                ) from err
        # Line k is the stamp of frame number k (KITTI-360 numbers frames from 0, gap-free).
        if self.strict and len(stamps) != len(self):
            raise DatasetError(
                f"{path}: frame counts disagree: {len(stamps)} timestamps but {len(self)} frames"
            )
        last = int(self.frame_ids.max())
        if last >= len(stamps):
            raise DatasetError(f"{path}: {len(stamps)} timestamps, but frame {last:010d} exists")
        return np.asarray(stamps, dtype=np.float64)[self.frame_ids]

    def _read_indexed_poses(self, path: Path, columns: int) -> np.ndarray:
        ids, rows = read_number_rows(path, columns, what="KITTI-360 poses", indexed=True)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DatasetError(f"{path}: frame {int(unique[counts > 1][0])} has several poses")
        positions = np.searchsorted(self.frame_ids, ids)
        positions = np.minimum(positions, len(self.frame_ids) - 1)
        known = self.frame_ids[positions] == ids
        if not known.all():
            missing = ids[~known]
            message = (
                f"{path}: poses refer to {len(missing)} frame(s) that do not exist "
                f"(first: {int(missing[0]):010d}; frames present: "
                f"{int(self.frame_ids[0]):010d}..{int(self.frame_ids[-1]):010d}, {len(self)})"
            )
            if self.strict:
                raise DatasetError(f"{message}; strict=False ignores them")
            log.warning("%s; ignoring them", message)
        poses = np.full((len(self), 4, 4), np.nan)
        poses[positions[known]] = rows_to_matrices(rows[known])
        if not known.any():
            log.warning("%s: no pose of %s belongs to a frame of the drive", self.name, path)
        return poses

    # -- IndexedSource --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._images)

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps

    @property
    def poses(self) -> np.ndarray | None:
        return self._poses

    @property
    def odometry(self) -> np.ndarray | None:
        """(N, 4, 4) simulated ``T_odom_lidar`` (seeded by the drive name), NaN rows for the
        unposed frames; None without poses. Computed on first use."""
        if self._odometry is None and self._poses is not None:
            seed = stable_seed("kitti360", self.drive)
            self._odometry = simulated_from_poses(self._poses, seed, self.odometry_errors)
        return self._odometry

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: frame {index} out of range (0..{len(self) - 1})")
        pose = None
        if self._poses is not None and not np.isnan(self._poses[index, 0, 0]):
            pose = self._poses[index].copy()
        meta = {"drive": self.drive, "frame_id": int(self.frame_ids[index])}
        odometry = None
        if pose is not None and self.odometry is not None:
            odometry = self.odometry[index].copy()
            meta["odometry"] = "simulated"
        return Frame(
            index=index,
            stamp=float(self._stamps[index]),
            image=read_image(self._images[index]) if image else None,
            points=read_scan(self._scans[index]) if points else None,
            pose=pose,
            odometry=odometry,
            meta=meta,
        )
