"""Range projection speed: the fast path against the straightforward one, same run.

Prints the median time of a 120,000-point HDL-64E-like scan through
``liploc_ros.preprocess.range_image`` and through the straightforward version (sort by depth,
then assign), their ratio, and the camera preprocessing time of a KITTI-sized frame.
Goals (2-core machine): >= 5x the straightforward version, <= 3 ms a scan.

    .venv/bin/python bench/bench_preprocess.py [--points 120000] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from liploc_ros.preprocess import PreprocessConfig, camera_input, lidar_input, range_image
from liploc_ros.preprocess.reference import naive_range_image


def hdl64_like_scan(n: int, seed: int = 0) -> np.ndarray:
    """Beams from +2 to -24.9 deg, full azimuth, ranges of a street (5..80 m, ground below)."""
    rng = np.random.default_rng(seed)
    beams = 64
    per_beam = n // beams
    pitch = np.repeat(np.radians(np.linspace(2.0, -24.9, beams)), per_beam)
    yaw = np.tile(np.linspace(-np.pi, np.pi, per_beam, endpoint=False), beams)
    ground = np.where(pitch < -0.02, 1.73 / np.maximum(np.sin(-pitch), 1e-3), np.inf)
    walls = rng.uniform(5.0, 80.0, pitch.size)
    r = np.minimum(ground, walls) + rng.normal(0, 0.02, pitch.size)
    pts = np.stack(
        [
            r * np.cos(pitch) * np.cos(yaw),
            r * np.cos(pitch) * np.sin(yaw),
            r * np.sin(pitch),
            rng.uniform(0, 1, pitch.size),
        ],
        axis=1,
    )
    return pts.astype(np.float32)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=120_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    cfg = PreprocessConfig()
    scan = hdl64_like_scan(args.points)
    assert np.array_equal(range_image(scan, cfg.lidar), naive_range_image(scan, cfg.lidar))

    fast = median_ms(lambda: range_image(scan, cfg.lidar), args.repeats)
    naive = median_ms(lambda: naive_range_image(scan, cfg.lidar), max(20, args.repeats // 5))
    lidar_full = median_ms(lambda: lidar_input(scan, cfg), args.repeats)
    frame = np.random.default_rng(1).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    camera = median_ms(lambda: camera_input(frame, cfg), args.repeats)

    print(f"range projection, {scan.shape[0]} points (HDL-64E, crop 32x300)")
    print(f"  fast path            median {fast:7.3f} ms")
    print(f"  straightforward      median {naive:7.3f} ms")
    print(f"  speed-up             {naive / fast:7.2f}x   (goal >= 5x, <= 3 ms)")
    print(f"lidar_input (range image + resize 224 + normalise)  median {lidar_full:7.3f} ms")
    print(f"camera_input (1242x375 RGB -> 3x224x224)            median {camera:7.3f} ms")


if __name__ == "__main__":
    main()
