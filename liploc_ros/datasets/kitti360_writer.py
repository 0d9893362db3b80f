"""Any :class:`~liploc_ros.datasets.base.FrameSource` -> a KITTI-360 drive folder.

Writes the layout :class:`~liploc_ros.datasets.kitti360.Kitti360` reads (see
:mod:`~liploc_ros.datasets.kitti360`): rectified camera 0 images, velodyne scans, both
timestamps.txt, the shared ``calibration/`` folder and, for the posed frames, poses.txt and
cam0_to_world.txt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from liploc_ros.datasets.base import Calibration, FrameSource
from liploc_ros.datasets.frame_files import (
    list_frame_files,
    remove_stale_frames,
    write_frame_files,
)
from liploc_ros.datasets.kitti360_names import FRAME_DIGITS, drive_name, format_timestamp
from liploc_ros.datasets.textfiles import format_floats, format_pose_row
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import write_text_atomic

__all__ = ["NOMINAL_T_POSE_CAM0", "write_kitti360"]

log = logging.getLogger(__name__)

#: T_pose_cam0 written by :func:`write_kitti360`: a nominal placement (not KITTI-360's
#: measured one) of camera 0 in the vehicle "pose" frame (x forward, y left, z up): looking
#: forward, 1.5 m ahead of and 0.7 m above the pose frame's origin
NOMINAL_T_POSE_CAM0 = np.array(
    [
        [0.0, 0.0, 1.0, 1.5],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 0.7],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _calibration_texts(calibration: Calibration) -> dict[str, str]:
    """The three calibration files for a rectified camera 0 (R_rect = I, P_rect = [K | 0])."""
    K = np.asarray(calibration.camera_matrix, dtype=np.float64)
    T_velo_cam0 = np.asarray(calibration.T_lidar_camera, dtype=np.float64)
    width, height = calibration.image_size
    P = np.hstack([K, np.zeros((3, 1))])
    return {
        "calib_cam_to_velo.txt": format_pose_row(T_velo_cam0) + "\n",
        "calib_cam_to_pose.txt": f"image_00: {format_pose_row(NOMINAL_T_POSE_CAM0)}\n",
        "perspective.txt": (
            f"S_rect_00: {format_floats([width, height])}\n"
            f"R_rect_00: {format_floats(np.eye(3).reshape(-1))}\n"
            f"P_rect_00: {format_pose_row(P)}\n"
        ),
    }


def write_kitti360(
    source: FrameSource,
    root: str | Path,
    drive: str | int = 0,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``source`` as KITTI-360 drive ``drive`` under ``root``; returns ``root`` (the
    folder :class:`Kitti360` reads, with the drive name).

    Every frame needs an image and a scan; frames with a pose go to poses.txt and
    cam0_to_world.txt, the others are left out of both (as in KITTI-360). The images are
    written as already rectified (R_rect_00 = I, P_rect_00 = [K | 0]), so camera 0 is the
    source's camera; the pose frame sits at :data:`NOMINAL_T_POSE_CAM0` from it. A source
    without calibration gets the nominal rig of :mod:`liploc_ros.datasets.default_rig`
    (logged). The stamps are written to both timestamps.txt files with nanosecond
    resolution.

    KITTI-360 keeps one ``calibration/`` folder for all drives: writing a drive whose rig
    differs from the calibration already there is refused unless ``overwrite`` (which then
    changes it for the other drives too, with a warning). A drive that already holds data is
    only replaced with ``overwrite=True``; then stale frame and pose files are removed.
    """
    root = Path(root).expanduser()
    name = drive_name(drive)
    camera_dir = root / "data_2d_raw" / name / "image_00"
    velodyne_dir = root / "data_3d_raw" / name / "velodyne_points"
    image_dir, scan_dir = camera_dir / "data_rect", velodyne_dir / "data"
    poses_dir, calib_dir = root / "data_poses" / name, root / "calibration"
    stamp_files = [camera_dir / "timestamps.txt", velodyne_dir / "timestamps.txt"]
    pose_files = [poses_dir / "poses.txt", poses_dir / "cam0_to_world.txt"]

    existing = [p for p in stamp_files + pose_files if p.exists()]
    for folder, suffix in ((image_dir, ".png"), (scan_dir, ".bin")):
        if folder.is_dir():
            existing += list_frame_files(folder, suffix, FRAME_DIGITS, "frame")[:1]
    if existing and not overwrite:
        raise DatasetError(
            f"{root}: KITTI-360 drive {name} already holds data ({existing[0]}); "
            "pass overwrite=True to replace it"
        )

    calib_texts: dict[str, str] = {}

    def check_calibration(calibration: Calibration) -> None:
        calib_texts.update(_calibration_texts(calibration))
        for filename, text in calib_texts.items():
            path = calib_dir / filename
            if path.is_file() and path.read_text(encoding="utf-8") != text:
                if not overwrite:
                    raise DatasetError(
                        f"{path} holds another rig's calibration, and KITTI-360 shares "
                        "calibration/ between drives; write to another root or pass "
                        "overwrite=True"
                    )
                log.warning("replacing %s: the other drives under %s change rig too", path, root)

    for folder in (image_dir, scan_dir, calib_dir):
        folder.mkdir(parents=True, exist_ok=True)
    written = write_frame_files(
        source,
        lambda i: image_dir / f"{i:0{FRAME_DIGITS}d}.png",
        lambda i: scan_dir / f"{i:0{FRAME_DIGITS}d}.bin",
        progress=progress,
        desc=f"kitti360/{name}",
        on_calibration=check_calibration,
    )
    for filename, text in calib_texts.items():
        write_text_atomic(calib_dir / filename, text)
    stamps_text = "".join(f"{format_timestamp(s)}\n" for s in written.stamps)
    for path in stamp_files:
        write_text_atomic(path, stamps_text)

    if overwrite:
        remove_stale_frames(image_dir, ".png", FRAME_DIGITS, len(written))
        remove_stale_frames(scan_dir, ".bin", FRAME_DIGITS, len(written))
        for path in pose_files:
            path.unlink(missing_ok=True)
    T_lidar_cam0 = np.asarray(written.calibration.T_lidar_camera, dtype=np.float64)
    to_pose_frame = T_lidar_cam0 @ np.linalg.inv(NOMINAL_T_POSE_CAM0)
    pose_lines, cam0_lines = [], []
    for i, T_world_lidar in enumerate(written.poses):
        if T_world_lidar is None:
            continue
        pose_lines.append(f"{i} {format_pose_row(T_world_lidar @ to_pose_frame)}\n")
        cam0 = (T_world_lidar @ T_lidar_cam0).reshape(-1)
        cam0_lines.append(f"{i} {format_floats(cam0)}\n")
    if pose_lines:
        poses_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(pose_files[0], "".join(pose_lines))
        write_text_atomic(pose_files[1], "".join(cam0_lines))
    else:
        log.info("kitti360/%s: the source has no poses; no pose files written", name)
    log.info(
        "wrote %d frames (%d with a pose) of kitti360/%s to %s",
        len(written),
        len(pose_lines),
        name,
        root,
    )
    return root
