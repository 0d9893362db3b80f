"""``liploc kitti2bag``: a KITTI odometry sequence -> a ROS 2 bag for ``ros2 bag play``.

Topics and frames are :class:`liploc_ros.datasets.rosbag_writer.BagTopics`' defaults
(kitti2bag's names): images, camera_info, PointCloud2, /tf_static, nav_msgs/Odometry ground
truth on /ground_truth/odom, and (sequences 00-10 only: 11-21 have no poses) an odometry
simulated from the poses on /odom and tf odom -> base_link (labelled simulated in the bag's
metadata); with ``--no-odometry`` or without poses, tf carries map -> base_link instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from liploc_ros.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="KITTI odometry folder (holding sequences/)")
    parser.add_argument("--sequence", default="00", help="sequence number (default: 00)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bag directory to write (default: kitti_<sequence> in the current folder)",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--image-encoding",
        choices=("rgb8", "bgr8", "jpeg"),
        default="rgb8",
        help="raw rgb8/bgr8 Image, or jpeg CompressedImage on <topic>/compressed",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="first N frames")
    parser.add_argument(
        "--time-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="added to times.txt stamps (which start at 0; some consumers treat a zero "
        "stamp as unset)",
    )
    parser.add_argument(
        "--no-odometry",
        action="store_true",
        help="no simulated odometry: tf carries the ground truth map -> base_link",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.kitti import KittiOdometry
    from liploc_ros.datasets.rosbag_writer import write_bag

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    source = KittiOdometry(args.root, args.sequence)
    out = args.out if args.out is not None else Path(f"kitti_{source.sequence}")
    count = len(source) if args.limit is None else min(len(source), args.limit)
    path = write_bag(
        source,
        out,
        storage=args.storage,
        image_encoding=args.image_encoding,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        time_offset=args.time_offset,
        limit=args.limit,
        odometry=not args.no_odometry,
    )
    stamps = source.stamps[:count]
    duration = float(stamps[-1] - stamps[0]) if count else 0.0
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    posed = "with" if source.poses is not None else "without"
    print(
        f"wrote {count} frames ({duration:.1f} s, {posed} poses) of {source.name} to {path} "
        f"({args.storage}, {args.image_encoding}, {size / 2**20:.1f} MiB)"
    )
    if source.odometry is not None and not args.no_odometry:
        from liploc_ros.datasets.odometry_sources import describe_model

        assert source.odometry_errors is not None
        print(
            "odometry: SIMULATED from the poses (/odom, tf odom -> base_link; "
            f"{describe_model(source.odometry_errors)})"
        )
    else:
        print("odometry: none (tf map -> base_link carries the poses)")
    return 0
