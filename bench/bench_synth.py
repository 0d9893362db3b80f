"""Speed of the synthetic world: frames/s of rendering camera + LiDAR for a 300-frame drive.

Goal: a 300-frame traversal in under 60 s on the 2-core development machine (>= 5 frames/s),
at the default rig (KITTI image_2 geometry at 1/3 scale, 64 x 2048 LiDAR). Also times, in
the same loop, the windowed scan training renders (only the rays the authors' range-image
crop keeps) and prints its speed-up over the full scan.

    .venv/bin/python bench/bench_synth.py [--frames 300] [--seed 0] [--traversal 0]
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from liploc_ros.datasets.synthetic import RigConfig, TownConfig, make_town
from liploc_ros.datasets.synthetic.drive import SyntheticDrive
from liploc_ros.preprocess.config import RangeImageConfig
from liploc_ros.training.sources import scan_window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traversal", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    town = make_town(TownConfig(seed=args.seed))
    t1 = time.perf_counter()
    drive = SyntheticDrive(town, args.traversal, args.frames, RigConfig())
    t2 = time.perf_counter()
    window = scan_window(RangeImageConfig())  # the HDL-64E projection, the authors' crop
    windowed = SyntheticDrive(town, args.traversal, args.frames, RigConfig(), window)
    points = 0
    cam_s = lidar_s = window_s = 0.0
    for i in tqdm(range(len(drive)), desc=drive.name, unit="frame"):
        a = time.perf_counter()
        drive.render_camera(i)
        b = time.perf_counter()
        points += len(drive.render_lidar(i).points)
        c = time.perf_counter()
        windowed.render_lidar(i)
        cam_s += b - a
        lidar_s += c - b
        window_s += time.perf_counter() - c
    total = cam_s + lidar_s
    w, h = drive.calibration.image_size
    print(f"town generation: {t1 - t0:.2f} s ({len(town.static)} static objects)")
    print(f"drive setup: {t2 - t1:.3f} s")
    print(
        f"{len(drive)} frames (camera {w}x{h} + LiDAR {drive.rig.lidar_beams}x"
        f"{drive.rig.lidar_azimuth_steps}, {points / len(drive):.0f} points/scan): "
        f"{total:.1f} s, {len(drive) / total:.1f} frames/s "
        f"(camera {1000 * cam_s / len(drive):.1f} ms, LiDAR {1000 * lidar_s / len(drive):.1f} ms "
        "per frame)"
    )
    rays = len(windowed.lidar.rows) * len(windowed.lidar.cols)
    print(
        f"windowed LiDAR ({rays} of {windowed.lidar.rays} rays, the authors' crop): "
        f"{1000 * window_s / len(drive):.1f} ms per scan, {lidar_s / window_s:.1f}x faster; "
        f"camera + windowed LiDAR: {len(drive) / (cam_s + window_s):.1f} frames/s"
    )


if __name__ == "__main__":
    main()
