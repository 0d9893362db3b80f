"""KITTI odometry sequences: read and write the benchmark's folder layout.

Layout (``<root>`` holds ``sequences/`` and, for sequences 00-10, ``poses/``)::

    <root>/sequences/<NN>/image_2/<6-digit>.png   left colour camera (BGR on disk)
    <root>/sequences/<NN>/velodyne/<6-digit>.bin  float32 N x 4: x y z reflectance
    <root>/sequences/<NN>/calib.txt               "P0:" .. "P3:" (3 x 4), "Tr:" velodyne -> cam 0
    <root>/sequences/<NN>/times.txt               seconds, one line per frame
    <root>/poses/<NN>.txt  or  <root>/sequences/<NN>/poses.txt (SemanticKITTI)

A pose line is the 3 x 4 row-major pose of (rectified) camera 0 in the camera-0 frame of the
first frame: y down, z forward. The package wants ``T_map_lidar`` with z up, so the reader
conjugates with ``Tr`` (= ``T_cam0_lidar``; the odometry benchmark's ``Tr`` already maps into
*rectified* camera-0 coordinates, so no R0_rect is involved)::

    T_map_lidar = inv(Tr) @ T_cam0start_cam0 @ Tr

which puts the map frame at the LiDAR of the first scan, z up. The writer applies the inverse
conjugation, so what it writes reads back to the source's poses; its map frame is kept as it
is (not re-anchored at the first frame), so the first pose line of a written sequence is the
identity only when the source's first pose is.

KITTI records no odometry: a posed sequence gets one simulated from its poses
(:mod:`liploc_ros.datasets.odometry_sources`, seeded by the sequence name, labelled
``Frame.meta["odometry"] = "simulated"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from liploc_ros.datasets.base import Calibration, Frame, FrameSource, IndexedSource
from liploc_ros.datasets.frame_files import (
    check_scan_sizes,
    list_frame_files,
    png_size,
    read_image,
    read_scan,
    remove_stale_frames,
    write_frame_files,
)
from liploc_ros.datasets.odometry import DEFAULT_ODOMETRY_ERRORS, OdometryErrorModel
from liploc_ros.datasets.odometry_sources import simulated_from_poses, stable_seed
from liploc_ros.datasets.textfiles import (
    KeyValueFile,
    format_floats,
    format_pose_row,
    read_number_rows,
    rows_to_matrices,
)
from liploc_ros.errors import DatasetError
from liploc_ros.io_utils import write_text_atomic

log = logging.getLogger(__name__)

#: frame period used for stamps when a sequence has no times.txt (the velodyne runs at 10 Hz)
FALLBACK_PERIOD_S = 0.1

#: camera centre offsets b (X_k = X_0 + b, metres, camera-0 axes) written into P0..P3 as
#: ``P_k = K @ [I | b]``: KITTI's nominal stereo rig, camera 2 (the images we write) 0.06 m
#: left of camera 0, cameras 1 and 3 0.54 m right of cameras 0 and 2
_WRITTEN_CAMERA_OFFSETS = {
    "P0": (0.0, 0.0, 0.0),
    "P1": (-0.54, 0.0, 0.0),
    "P2": (0.06, 0.0, 0.0),
    "P3": (-0.48, 0.0, 0.0),
}

_DIGITS = 6


def sequence_id(sequence: str | int) -> str:
    """KITTI's two-digit sequence name: 8, "8" and "08" all give "08"."""
    if isinstance(sequence, (int, np.integer)) and not isinstance(sequence, bool):
        if sequence < 0:
            raise DatasetError(f"KITTI sequence number must be >= 0, got {sequence}")
        return f"{int(sequence):02d}"
    if isinstance(sequence, str):
        name = sequence.strip()
        if name.isdigit():
            return name.zfill(2)
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            return name
    raise DatasetError(f"invalid KITTI sequence name {sequence!r}")


def _rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _homogeneous(rows34: np.ndarray) -> np.ndarray:
    return rows_to_matrices(np.asarray(rows34).reshape(1, 12))[0]


class KittiOdometry(IndexedSource):
    """One KITTI odometry sequence, loaded lazily: files are listed and text files parsed at
    construction; an image or scan is read only when its frame is asked for.

    ``root`` is the folder that holds ``sequences/`` (then ``sequence`` names one), that
    folder ``sequences/`` itself, or a sequence folder (``.../sequences/08``; ``sequence`` may
    then be None, and if given it names the sequence for the poses lookup). Poses come
    from ``poses_file`` if given, else ``<root>/poses/<NN>.txt``, else
    ``sequences/<NN>/poses.txt``; a sequence without any (11-21) still loads, with
    ``poses`` None. ``odometry_errors``: the error model of the simulated odometry (None: no
    odometry).
    """

    def __init__(
        self,
        root: str | Path,
        sequence: str | int | None = None,
        *,
        poses_file: str | Path | None = None,
        odometry_errors: OdometryErrorModel | None = DEFAULT_ODOMETRY_ERRORS,
    ) -> None:
        self.sequence_dir, self.sequence = self._find_sequence(Path(root).expanduser(), sequence)
        self.odometry_errors = odometry_errors
        self._odometry: np.ndarray | None = None
        self.name = f"kitti/{self.sequence}"
        seq = self.sequence_dir

        self._images = list_frame_files(seq / "image_2", ".png", _DIGITS, "image_2 (camera)")
        self._scans = list_frame_files(seq / "velodyne", ".bin", _DIGITS, "velodyne")
        self._check_frame_files()
        check_scan_sizes(self._scans)
        count = len(self._images)

        self.T_cam0_lidar, self.calibration = self._read_calibration(seq / "calib.txt")
        self._stamps = self._read_times(seq / "times.txt", count)

        self.poses_path = self._find_poses(poses_file)
        self._camera_poses: np.ndarray | None = None
        self._poses: np.ndarray | None = None
        if self.poses_path is None:
            log.info("%s: no poses (%s); frames carry pose None", self.name, seq)
        else:
            camera = rows_to_matrices(self._read_pose_rows(self.poses_path, count))
            Tr, Tr_inv = self.T_cam0_lidar, np.linalg.inv(self.T_cam0_lidar)
            self._camera_poses = camera
            self._poses = Tr_inv @ camera @ Tr
            self._camera_poses.flags.writeable = False
            self._poses.flags.writeable = False
        self._stamps.flags.writeable = False

    # -- discovery and validation ---------------------------------------------------------

    @staticmethod
    def _find_sequence(root: Path, sequence: str | int | None) -> tuple[Path, str]:
        if not root.is_dir():
            raise DatasetError(f"KITTI folder does not exist: {root}")
        sequences = root / "sequences"
        if sequences.is_dir():
            available = sorted(p.name for p in sequences.iterdir() if p.is_dir())
            if sequence is None:
                raise DatasetError(
                    f"{root} holds several KITTI sequences; name one of: {', '.join(available)}"
                )
            seq_id = sequence_id(sequence)
            seq_dir = sequences / seq_id
            if not seq_dir.is_dir():
                raise DatasetError(
                    f"missing KITTI sequence folder {seq_dir} "
                    f"(available: {', '.join(available) or 'none'})"
                )
            return seq_dir, seq_id
        if sequence is not None and (root / sequence_id(sequence)).is_dir():
            return root / sequence_id(sequence), sequence_id(sequence)  # root = .../sequences
        if any((root / name).exists() for name in ("image_2", "velodyne", "calib.txt")):
            return root, sequence_id(root.name if sequence is None else sequence)
        raise DatasetError(
            f"{root}: not a KITTI odometry folder: it holds no sequences/ folder and is not a "
            "sequence folder (no image_2/, velodyne/ or calib.txt)"
        )

    def _check_frame_files(self) -> None:
        images, scans = self._images, self._scans
        seq = self.sequence_dir
        if len(images) != len(scans):
            raise DatasetError(
                f"{seq}: frame counts disagree: {len(images)} images in image_2/ but "
                f"{len(scans)} scans in velodyne/"
            )
        if not images:
            raise DatasetError(f"{seq}: no frames: image_2/ and velodyne/ hold no numbered files")
        for image, scan in zip(images, scans, strict=True):
            if image.stem != scan.stem:
                raise DatasetError(
                    f"{seq}: frame files disagree: {image.name} in image_2/ pairs with "
                    f"{scan.name} in velodyne/ (a frame is missing in one of them)"
                )

    def _read_calibration(self, path: Path) -> tuple[np.ndarray, Calibration]:
        calib = KeyValueFile.read(path, "KITTI calibration (calib.txt)")
        P2 = calib.matrix("P2", 3, 4)
        tr_key = "Tr" if "Tr" in calib or "Tr_velo_to_cam" not in calib else "Tr_velo_to_cam"
        Tr = _homogeneous(calib.floats(tr_key, 12))
        K = P2[:, :3]
        if abs(np.linalg.det(K)) < 1e-12 or abs(np.linalg.det(Tr)) < 1e-12:
            raise DatasetError(f"{path}: P2 or {tr_key} is singular")
        # P2 = K @ [I | b]: camera 2 sees X_cam0 + b, so T_cam2_cam0 = [I | b].
        b = np.linalg.solve(K, P2[:, 3])
        T_lidar_cam2 = np.linalg.inv(Tr) @ _rigid(np.eye(3), -b)
        size = png_size(self._images[0])
        return Tr, Calibration(
            camera_matrix=K.copy(), image_size=size, T_lidar_camera=T_lidar_cam2
        )

    def _read_times(self, path: Path, count: int) -> np.ndarray:
        if not path.exists():
            log.warning(
                "%s: no times.txt in %s; using stamps of frame index * %.1f s",
                self.name,
                self.sequence_dir,
                FALLBACK_PERIOD_S,
            )
            return np.arange(count, dtype=np.float64) * FALLBACK_PERIOD_S
        _, rows = read_number_rows(path, 1, what="KITTI times.txt")
        if len(rows) != count:
            raise DatasetError(
                f"{path}: frame counts disagree: {len(rows)} times but {count} frames "
                "(image_2/ and velodyne/)"
            )
        return rows[:, 0].copy()

    def _find_poses(self, poses_file: str | Path | None) -> Path | None:
        if poses_file is not None:
            path = Path(poses_file).expanduser()
            if not path.is_file():
                raise DatasetError(f"missing KITTI poses file: {path}")
            return path
        candidates = [self.sequence_dir / "poses.txt"]
        if self.sequence_dir.parent.name == "sequences":
            root = self.sequence_dir.parent.parent
            candidates.insert(0, root / "poses" / f"{self.sequence}.txt")
        return next((p for p in candidates if p.is_file()), None)

    @staticmethod
    def _read_pose_rows(path: Path, count: int) -> np.ndarray:
        _, rows = read_number_rows(path, 12, what="KITTI poses")
        if len(rows) != count:
            raise DatasetError(
                f"{path}: frame counts disagree: {len(rows)} poses but {count} frames "
                "(image_2/ and velodyne/)"
            )
        return rows

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
    def camera_poses(self) -> np.ndarray | None:
        """(N, 4, 4) the poses file as it is: camera 0 in the first camera-0 frame (y down),
        the frame the authors' evaluation measures distances in; None without poses."""
        return self._camera_poses

    @property
    def odometry(self) -> np.ndarray | None:
        """(N, 4, 4) simulated ``T_odom_lidar`` (seeded by the sequence name), None without
        poses; computed on first use."""
        if self._odometry is None and self._poses is not None:
            seed = stable_seed("kitti", self.sequence)
            self._odometry = simulated_from_poses(self._poses, seed, self.odometry_errors)
        return self._odometry

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: frame {index} out of range (0..{len(self) - 1})")
        meta = {"sequence": self.sequence, "file": self._images[index].stem}
        odometry = self.odometry
        if odometry is not None:
            meta["odometry"] = "simulated"
        return Frame(
            index=index,
            stamp=float(self._stamps[index]),
            image=read_image(self._images[index]) if image else None,
            points=read_scan(self._scans[index]) if points else None,
            pose=None if self._poses is None else self._poses[index].copy(),
            odometry=None if odometry is None else odometry[index].copy(),
            meta=meta,
        )


def write_kitti_odometry(
    source: FrameSource,
    root: str | Path,
    sequence: str | int = "00",
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``source`` as KITTI odometry sequence ``sequence`` under ``root``; returns the
    sequence folder.

    Every frame needs an image and a scan. Poses go to ``<root>/poses/<NN>.txt`` when every
    frame has one, and are left out when none has; a source with some frames unposed cannot
    be written (KITTI pose files have one line per frame). P0..P3 carry the source's camera
    matrix with KITTI's nominal stereo offsets, and ``Tr`` is derived from its
    ``T_lidar_camera`` so that the reader gives back the same rig. A source without
    calibration gets the nominal rig of :mod:`liploc_ros.datasets.default_rig` (logged).

    A sequence that already holds data is only replaced with ``overwrite=True``; then frame
    files beyond the new length and a stale poses file are removed.
    """
    seq_id = sequence_id(sequence)
    root = Path(root).expanduser()
    seq_dir = root / "sequences" / seq_id
    image_dir, scan_dir = seq_dir / "image_2", seq_dir / "velodyne"
    poses_path = root / "poses" / f"{seq_id}.txt"
    stale_poses = [poses_path, seq_dir / "poses.txt"]
    existing = [
        p for p in [seq_dir / "calib.txt", seq_dir / "times.txt", *stale_poses] if p.exists()
    ]
    for folder, suffix in ((image_dir, ".png"), (scan_dir, ".bin")):
        if folder.is_dir():
            existing += list_frame_files(folder, suffix, _DIGITS, "frame")[:1]
    if existing and not overwrite:
        raise DatasetError(
            f"{seq_dir}: KITTI sequence {seq_id} already holds data ({existing[0]}); "
            "pass overwrite=True to replace it"
        )
    _check_poses_all_or_none(source, f"KITTI sequence {seq_id}")

    image_dir.mkdir(parents=True, exist_ok=True)
    scan_dir.mkdir(parents=True, exist_ok=True)
    written = write_frame_files(
        source,
        lambda i: image_dir / f"{i:0{_DIGITS}d}.png",
        lambda i: scan_dir / f"{i:0{_DIGITS}d}.bin",
        progress=progress,
        desc=f"kitti/{seq_id}",
    )
    calibration = written.calibration
    K = np.asarray(calibration.camera_matrix, dtype=np.float64)
    T_lidar_cam2 = np.asarray(calibration.T_lidar_camera, dtype=np.float64)
    # Camera 0 sits where camera 2 is, shifted by minus its offset: T_cam0_cam2 = [I | -b2].
    b2 = np.asarray(_WRITTEN_CAMERA_OFFSETS["P2"])
    Tr = _rigid(np.eye(3), -b2) @ np.linalg.inv(T_lidar_cam2)
    lines = []
    for key, offset in _WRITTEN_CAMERA_OFFSETS.items():
        P = np.hstack([K, (K @ np.asarray(offset))[:, None]])
        lines.append(f"{key}: {format_pose_row(P)}")
    lines.append(f"Tr: {format_pose_row(Tr)}")
    write_text_atomic(seq_dir / "calib.txt", "\n".join(lines) + "\n")
    write_text_atomic(
        seq_dir / "times.txt", "".join(f"{format_floats([s])}\n" for s in written.stamps)
    )

    if overwrite:
        remove_stale_frames(image_dir, ".png", _DIGITS, len(written))
        remove_stale_frames(scan_dir, ".bin", _DIGITS, len(written))
        for path in stale_poses:
            path.unlink(missing_ok=True)
    posed = [p for p in written.poses if p is not None]
    if not posed:
        log.info("kitti/%s: the source has no poses; no poses file written", seq_id)
    elif len(posed) != len(written):
        missing = [i for i, p in enumerate(written.poses) if p is None]
        raise DatasetError(
            f"{poses_path}: cannot write KITTI poses: {len(missing)} of {len(written)} frames "
            f"have no pose (first: frame {missing[0]}); a KITTI pose file needs one per frame"
        )
    else:
        Tr_inv = np.linalg.inv(Tr)
        poses_path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{format_pose_row(Tr @ T @ Tr_inv)}\n" for T in posed)
        write_text_atomic(poses_path, text)
    log.info("wrote %d frames of kitti/%s to %s", len(written), seq_id, seq_dir)
    return seq_dir


def _check_poses_all_or_none(source: FrameSource, what: str) -> None:
    """Refuse partial poses before writing anything, where the source says so cheaply."""
    if not isinstance(source, IndexedSource):
        return
    poses = source.poses
    if poses is None:
        return
    unposed: np.ndarray = np.any(np.isnan(np.asarray(poses, dtype=np.float64)), axis=(1, 2))
    if unposed.any() and not unposed.all():
        raise DatasetError(
            f"{what}: {int(unposed.sum())} of {len(unposed)} frames of {source.name!r} have no "
            f"pose (first: frame {int(np.argmax(unposed))}); a KITTI pose file needs one per "
            "frame"
        )
