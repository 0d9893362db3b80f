"""``liploc synth``: a synthetic town driven several times, written in the layouts users have.

Each traversal is rendered once, into the first requested layout; the other layouts are
copied from that one through its reader, so asking for every layout costs one rendering.

    OUT/kitti/sequences/<NN>/...     traversal NN (00 = the mapping drive), poses/<NN>.txt
    OUT/kitti360/...                 drive 2013_05_28_drive_<NNNN>_sync per traversal
    OUT/bags/t<N>/                   ROS 2 bag per traversal (mcap or sqlite3)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
    from liploc_ros.datasets.kitti360 import Kitti360, write_kitti360
    from liploc_ros.datasets.rosbag_writer import write_bag
    from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
    from liploc_ros.datasets.synthetic.config import TownConfig

    layouts = parse_layouts(args.format)
    if args.traversals < 1 or args.frames < 1:
        raise ConfigError("--traversals and --frames must be at least 1")
    progress = not args.no_progress
    out: Path = args.out
    t_start = time.perf_counter()
    town = make_town(TownConfig(seed=args.seed))
    print(f"town seed {args.seed}: generated in {time.perf_counter() - t_start:.2f} s")

    for t in range(args.traversals):
        drive = SyntheticDrive(town, t, args.frames)
        t0 = time.perf_counter()
        rendered_into = None
        for layout in layouts:
            # Render once; later layouts read back the first one's files (much faster).
            source = drive if rendered_into is None else rendered_into
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
                    source,
                    out / "bags" / f"t{t}",
                    storage=args.storage,
                    image_encoding=args.image_encoding,
                    progress=progress,
                    overwrite=args.overwrite,
                )
                reader = None
            rendered_into = rendered_into or reader
            print(f"  traversal {t}: {layout:8s} -> {path}")
        elapsed = time.perf_counter() - t0
        print(
            f"traversal {t}: {len(drive)} frames in {elapsed:.1f} s "
            f"({len(drive) / elapsed:.1f} frames/s, rendering and writing)"
        )
    print(f"done in {time.perf_counter() - t_start:.1f} s: {out}")
    return 0
