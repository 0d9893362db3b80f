"""``liploc synth``: a synthetic town driven several times, written in the layouts users have.

Each traversal is rendered once, into the first requested layout; the other layouts are
copied from that one through its reader, so asking for every layout costs one rendering.

    OUT/kitti/sequences/<NN>/...     traversal NN (00 = the mapping drive), poses/<NN>.txt
    OUT/kitti360/...                 drive 2013_05_28_drive_<NNNN>_sync per traversal
    OUT/bags/t<N>/                   ROS 2 bag per traversal (mcap or sqlite3)

Each traversal gets a simulated wheel odometry with drift (seeded by town and traversal;
``--odom-*`` change the error model, ``--no-odometry`` leaves it out). Bags carry it on
``/odom`` and tf ``odom -> base_link``, the truth on ``/ground_truth/odom``; the KITTI layouts
keep no odometry file (their readers simulate one from the poses).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from liploc_ros.datasets.odometry import DEFAULT_ODOMETRY_ERRORS, OdometryErrorModel
from liploc_ros.errors import ConfigError

LAYOUTS = ("kitti", "kitti360", "bag")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="town seed (default 0)")
    parser.add_argument("--traversals", type=int, default=2, help="drives of the town (2)")
    parser.add_argument("--frames", type=int, default=300, help="frames per traversal (300)")
    parser.add_argument(
        "--format",
        default="kitti",
        help=f"comma-separated layouts among {', '.join(LAYOUTS)}, or 'all' (default kitti)",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--image-encoding", choices=("rgb8", "bgr8", "jpeg"), default="rgb8")
    defaults = DEFAULT_ODOMETRY_ERRORS
    parser.add_argument(
        "--odom-scale-error",
        type=float,
        default=defaults.scale_error,
        metavar="FRACTION",
        help=f"odometry scale error, e.g. 0.03 = 3%% (default {defaults.scale_error})",
    )
    parser.add_argument(
        "--odom-yaw-drift",
        type=float,
        default=defaults.yaw_drift_deg_per_m,
        metavar="DEG_PER_M",
        help=f"largest odometry heading drift (default {defaults.yaw_drift_deg_per_m})",
    )
    parser.add_argument(
        "--odom-noise",
        type=float,
        default=defaults.translation_noise,
        metavar="FRACTION",
        help=f"odometry noise per step, of the step (default {defaults.translation_noise})",
    )
    parser.add_argument(
        "--odom-yaw-noise",
        type=float,
        default=defaults.yaw_noise_deg,
        metavar="DEG",
        help=f"odometry heading noise per step (default {defaults.yaw_noise_deg})",
    )
    parser.add_argument(
        "--no-odometry", action="store_true", help="write no odometry (bags: tf map -> base_link)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_layouts(text: str) -> list[str]:
    """'kitti,bag' -> ['kitti', 'bag'] in a fixed order; 'all' -> every layout."""
    asked = {t.strip().lower() for t in text.split(",") if t.strip()}
    if "all" in asked:
        return list(LAYOUTS)
    unknown = sorted(asked - set(LAYOUTS))
    if unknown or not asked:
        raise ConfigError(f"--format: unknown layout(s) {unknown}; choose from {LAYOUTS} or all")
    return [name for name in LAYOUTS if name in asked]


def odometry_model(args: argparse.Namespace) -> OdometryErrorModel | None:
    """The error model the options ask for; None with --no-odometry."""
    if args.no_odometry:
        return None
    return OdometryErrorModel(
        scale_error=args.odom_scale_error,
        yaw_drift_deg_per_m=args.odom_yaw_drift,
        translation_noise=args.odom_noise,
        yaw_noise_deg=args.odom_yaw_noise,
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.odometry import simulate_odometry
    from liploc_ros.datasets.odometry_sources import describe_model
    from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
    from liploc_ros.datasets.synthetic.config import TownConfig

    layouts = parse_layouts(args.format)
    if args.traversals < 1 or args.frames < 1:
        raise ConfigError("--traversals and --frames must be at least 1")
    model = odometry_model(args)
    out: Path = args.out
    t_start = time.perf_counter()
    town = make_town(TownConfig(seed=args.seed))
    print(f"town seed {args.seed}: generated in {time.perf_counter() - t_start:.2f} s")
    if model is None:
        print("odometry: none (--no-odometry)")
    else:
        print(f"odometry: simulated, seeded per traversal: {describe_model(model)}")

    for t in range(args.traversals):
        drive = SyntheticDrive(town, t, args.frames)
        odometry = None
        if model is not None:  # the drive's own seed (town, traversal), this model
            odometry = simulate_odometry(drive.poses, (town.seed, drive.traversal.index), model)
        label = None if model is None else describe_model(model)
        t0 = time.perf_counter()
        _write_traversal(args, drive, t, layouts, odometry, label)
        elapsed = time.perf_counter() - t0
        print(
            f"traversal {t}: {len(drive)} frames in {elapsed:.1f} s "
            f"({len(drive) / elapsed:.1f} frames/s, rendering and writing)"
        )
    print(f"done in {time.perf_counter() - t_start:.1f} s: {out}")
    return 0


def _write_traversal(
    args: argparse.Namespace, drive: Any, t: int, layouts: Any, odometry: Any, label: str | None
) -> None:
    """Traversal ``t`` in every layout: rendered once, later layouts read back the first
    one's files (much faster)."""
    from liploc_ros.datasets.base import IndexedSource
    from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
    from liploc_ros.datasets.kitti360 import Kitti360, write_kitti360
    from liploc_ros.datasets.odometry_sources import WithOdometry
    from liploc_ros.datasets.rosbag_writer import write_bag

    out, progress = args.out, not args.no_progress
    rendered_into: IndexedSource | None = None
    for layout in layouts:
        reader: IndexedSource | None
        source = WithOdometry(
            drive if rendered_into is None else rendered_into, odometry, model=label
        )
        if layout == "kitti":
            path = write_kitti_odometry(
                source, out / "kitti", f"{t:02d}", progress=progress, overwrite=args.overwrite
            )
            reader = KittiOdometry(out / "kitti", f"{t:02d}")
        elif layout == "kitti360":
            path = write_kitti360(
                source, out / "kitti360", t, progress=progress, overwrite=args.overwrite
            )
            reader = Kitti360(out / "kitti360", t)
        else:
            path = write_bag(
                source, out / "bags" / f"t{t}", storage=args.storage,
                image_encoding=args.image_encoding, progress=progress, overwrite=args.overwrite,
            )  # fmt: skip
            reader = None
        rendered_into = rendered_into or reader
        print(f"  traversal {t}: {layout:8s} -> {path}")
