"""The calibration a dataset writer uses when its source has none: a KITTI-like rig.

KITTI and KITTI-360 folders cannot exist without calibration files, and a frame source may
not know its rig (a bag without camera_info, a folder of images). Rather than refuse, the
writers fall back to the nominal KITTI setup (Geiger et al., IJRR 2013) and log a warning:

- the camera looks forward: optical axis = LiDAR +x, image right = LiDAR -y, image down =
  LiDAR -z;
- it sits 0.27 m ahead of the LiDAR, 0.06 m to its left and 0.08 m below it (the colour
  camera image_2 of the KITTI car);
- its focal length gives KITTI's horizontal field of view (fx = 718.856 px for 1241 px, about
  81 degrees), scaled to the width of the images written; the principal point is the centre.
"""

from __future__ import annotations

import logging

import numpy as np

from liploc_ros.datasets.base import Calibration
from liploc_ros.errors import DatasetError

log = logging.getLogger(__name__)

#: camera optical frame (x right, y down, z forward) expressed in the LiDAR frame
DEFAULT_T_LIDAR_CAMERA = np.array(
    [
        [0.0, 0.0, 1.0, 0.27],
        [-1.0, 0.0, 0.0, 0.06],
        [0.0, -1.0, 0.0, -0.08],
        [0.0, 0.0, 0.0, 1.0],
    ]
)

#: KITTI's focal length over image width (sequence 00: 718.856 px / 1241 px)
DEFAULT_FOCAL_PER_WIDTH = 718.856 / 1241.0


def default_calibration(image_size: tuple[int, int]) -> Calibration:
    """The nominal KITTI-like rig for images of ``image_size`` = (width, height)."""
    width, height = image_size
    focal = DEFAULT_FOCAL_PER_WIDTH * width
    camera_matrix = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0, 0, 1]])
    return Calibration(
        camera_matrix=camera_matrix,
        image_size=(int(width), int(height)),
        T_lidar_camera=DEFAULT_T_LIDAR_CAMERA.copy(),
    )


def writer_calibration(
    calibration: Calibration | None, image_size: tuple[int, int], where: str
) -> Calibration:
    """The source's calibration, checked against its images, or the default rig (logged)."""
    if calibration is None:
        log.warning(
            "%s: the source has no calibration; writing the nominal KITTI-like rig "
            "(liploc_ros.datasets.default_rig) for %dx%d images",
            where,
            *image_size,
        )
        return default_calibration(image_size)
    K = np.asarray(calibration.camera_matrix, dtype=np.float64)
    T = np.asarray(calibration.T_lidar_camera, dtype=np.float64)
    if K.shape != (3, 3) or T.shape != (4, 4):
        raise DatasetError(
            f"{where}: calibration needs a 3 x 3 camera matrix and a 4 x 4 T_lidar_camera, "
            f"got {K.shape} and {T.shape}"
        )
    if not (np.isfinite(K).all() and np.isfinite(T).all()):
        raise DatasetError(f"{where}: calibration holds non-finite values")
    if tuple(int(v) for v in calibration.image_size) != tuple(image_size):
        raise DatasetError(
            f"{where}: calibration is for {calibration.image_size[0]}x"
            f"{calibration.image_size[1]} images but the first image is "
            f"{image_size[0]}x{image_size[1]}"
        )
    return calibration
