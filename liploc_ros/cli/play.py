"""``liploc play BAG``: publish a ROS 2 bag's topics in real time (no ``ros2 bag play`` needed).

    liploc play out/demo/bags/query --rate 0.5 --topics /kitti/camera_color_left/image_raw
    liploc play run1/ --loop --clock          # with nodes run with use_sim_time:=true

Messages go out as recorded (serialized bytes, stamps unchanged) at the bag's pace times
``--rate``; /tf_static and transient-local topics are latched. Topics whose message package
is not installed here are skipped and listed (e.g. /tf without tf2_msgs on a pip-only
install). See :mod:`liploc_ros.ros.bag_player`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bag",
        type=Path,
        help="ROS 2 bag directory, one of its files, or a bare .mcap (kitti2mcap)",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor (1.0)")
    parser.add_argument("--loop", action="store_true", help="start over at the end")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=[],
        metavar="TOPIC",
        help="play only these topics (default: all)",
    )
    parser.add_argument(
        "--start-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="skip the bag's first SECONDS (0)",
    )
    parser.add_argument(
        "--clock",
        action="store_true",
        help="publish /clock with the bag's time (for use_sim_time)",
    )
    parser.add_argument(
        "--clock-frequency",
        type=float,
        default=40.0,
        metavar="HZ",
        help="/clock messages per second with --clock (40)",
    )
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for a subscriber on every played topic "
        "before starting (0: start at once)",
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.ros.bag_player import PlayOptions, play_bag

    options = PlayOptions(
        rate=args.rate,
        loop=args.loop,
        topics=tuple(args.topics),
        start_offset=args.start_offset,
        clock=args.clock,
        clock_frequency=args.clock_frequency,
    )
    stats = play_bag(args.bag, options, wait_for_subscribers=args.wait_for_subscribers)
    for topic, count in sorted(stats.published.items()):
        print(f"  {topic}: {count} messages")
    print(f"published {stats.total} messages in {stats.seconds:.1f} s")
    return 0
