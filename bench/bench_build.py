"""Map building throughput: the builder's scans/s over the bare encoder's, in the same run.

A synthetic drive is written to a KITTI layout in a temporary folder, so that reading is real
file I/O (from the page cache: the files were just written). For each model, in one run:

- encoder: ``Embedder.embed_lidar`` on pre-made input tensors (the same scans, preprocessed
  beforehand), the same count and batch size;
- builder: ``build_map`` over the KITTI folder with keyframe distance 0 (every scan is an
  entry), reading and preprocessing overlapped with encoding (``--workers`` threads);
- builder without overlap (workers 0) and read + preprocess alone, to show where time goes.

Each figure is the best of ``--repeats`` runs, the variants interleaved. Goal: builder /
encoder >= 0.9 (preprocessing and I/O hidden behind encoding).

``--configs BACKEND:PRECISION ...`` are the inference configurations measured (default:
``auto:auto``, what a map builder runs by default, plus every fixed configuration native
here: torch bf16, openvino fp32 / bf16 / int8, onnxruntime fp32 / int8); each model is also
measured with torch fp32 in the same run, and each configuration's builder scans/s is
printed against it (issue 22's goal with liploc-vit-s16: >= 2x). INT8 encoders are
calibrated on ``--calibration`` (verified against fp32 first; cached). The CPU's relevant
flags are printed beside the figures.

    .venv/bin/python bench/bench_build.py [--frames 128] [--batch-size 32] [--workers 2]
        [--models liploc-tiny:96 liploc-vit-s16:224] [--threads N] [--device auto]
        [--configs auto:auto openvino:int8 ...] [--calibration synthetic:0:0:400]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.mapping import MapBuildConfig, build_map
from liploc_ros.model import Embedder, LoadedModel, create_model, model_preset, wrap_model
from liploc_ros.model.backends import available_backends
from liploc_ros.model.backends.calibration import CalibrationConfig, CalibrationSet
from liploc_ros.model.backends.machine import flags_line
from liploc_ros.preprocess import CameraConfig, PreprocessConfig, lidar_input


def make_model(spec: str) -> LoadedModel:
    """``PRESET:SIZE`` -> an untrained model at that input size (speed only needs shapes)."""
    name, _, size = spec.partition(":")
    side = int(size or 224)
    pre = PreprocessConfig(camera=CameraConfig(image_size=side), lidar_image_size=side)
    torch.manual_seed(0)
    return wrap_model(create_model(model_preset(name), pre))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def kitti_drive(root: Path | None, frames: int) -> tuple[KittiOdometry, Callable[[], None]]:
    """The KITTI folder (written on first use) and a clean-up function."""
    tmp = None
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_build_")
        root = Path(tmp.name)
    if not (root / "sequences" / "00").is_dir():
        t = timed(lambda: write_kitti_odometry(make_drive(0, 0, frames), root, "00",
                                               progress=False))  # fmt: skip
        print(f"wrote {frames} synthetic frames as KITTI in {t:.1f} s ({root})")
    return KittiOdometry(root, "00"), (tmp.cleanup if tmp is not None else lambda: None)


def measure(
    spec: str,
    source: KittiOdometry,
    args: argparse.Namespace,
    backend: str,
    precision: str,
) -> tuple[dict[str, float], Embedder]:
    """Best-of-``repeats`` scans/s of the encoder alone, the builder with and without
    overlap, and reading + preprocessing alone, interleaved; and the Embedder used."""
    n = len(source)
    loaded = make_model(spec)
    calibration = None
    if precision == "int8":
        conf = CalibrationConfig(frames=args.calibration_frames, held_out=args.held_out)
        calibration = CalibrationSet(args.calibration, conf)
    embedder = Embedder(loaded, device=args.device, batch_size=args.batch_size,
                        precision=precision, backend=backend,
                        calibration=calibration)  # fmt: skip
    pre = loaded.preprocess
    scans = [f.points for f in source.iter_frames(image=False)]
    inputs = torch.from_numpy(np.stack([lidar_input(p, pre) for p in scans]))

    def encode() -> None:
        embedder.embed_lidar(inputs)
        if embedder.device.type == "cuda":
            torch.cuda.synchronize(embedder.device)

    def build(workers: int) -> None:
        config = MapBuildConfig(keyframe_distance=0.0, batch_size=args.batch_size,
                                workers=workers)  # fmt: skip
        _, summary = build_map(source, embedder, config, progress=False)
        assert summary.entries == n, summary

    def read_prep() -> None:
        for f in source.iter_frames(image=False):
            lidar_input(f.points, pre)

    embedder.embed_lidar(inputs[: args.batch_size])  # warm-up (auto chooses here)
    runs = {
        "encoder": encode,
        "builder": lambda: build(args.workers),
        "no_overlap": lambda: build(0),
        "read_prep": read_prep,
    }
    best = dict.fromkeys(runs, np.inf)
    for _ in range(args.repeats):
        for key, fn in runs.items():
            best[key] = min(best[key], timed(fn))
    return {key: n / seconds for key, seconds in best.items()}, embedder


def report(spec: str, rate: dict[str, float], runtime: str, cpus: int, base: float) -> None:
    """One row: scans/s of encoder, builder, ratio, no-overlap, read+prep, bound, vs torch."""
    name, _, size = spec.partition(":")
    # If the encoder keeps every core busy, reading and preprocessing can only use the
    # time they free: at best t_encoder + t_read_prep / cpus.
    bound = (1 / rate["encoder"]) / (1 / rate["encoder"] + 1 / rate["read_prep"] / cpus)
    print(f"{name:16s} {size:>4s} {rate['encoder']:9.1f} {rate['builder']:9.1f} "
          f"{rate['builder'] / rate['encoder']:6.2f} {rate['no_overlap']:10.1f} "
          f"{rate['read_prep']:9.1f} {bound:6.2f} {rate['builder'] / base:7.2f}x   {runtime}",
          flush=True)  # fmt: skip


def default_configs() -> list[tuple[str, str]]:
    """auto, and every fixed configuration native on this CPU."""
    import importlib.util

    from liploc_ros.device import cpu_has_bf16

    have = available_backends()
    configs = [("auto", "auto")]
    if cpu_has_bf16():
        configs.append(("torch", "bf16"))
    if "openvino" in have:
        from liploc_ros.model.backends.openvino_backend import openvino_has_bf16

        configs.append(("openvino", "fp32"))
        if cpu_has_bf16() and openvino_has_bf16():
            configs.append(("openvino", "bf16"))
        if importlib.util.find_spec("nncf") is not None:
            configs.append(("openvino", "int8"))
    if "onnxruntime" in have:
        configs += [("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="builder preprocessing threads")
    parser.add_argument("--models", nargs="+", default=["liploc-tiny:96", "liploc-vit-s16:224"],
                        help="PRESET:SIZE")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--configs", nargs="+", metavar="BACKEND:PRECISION",
                        help="configurations besides torch fp32 (default: auto and all "
                        "native here)")  # fmt: skip
    parser.add_argument(
        "--calibration",
        default="synthetic:0:0:400",
        help="INT8 calibration and verification frames (a source spec)",
    )
    parser.add_argument("--calibration-frames", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--data", type=Path, help="reuse/keep the KITTI folder here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [tuple(c.split(":", 1)) for c in args.configs] if args.configs else (
        default_configs())  # fmt: skip
    source, cleanup = kitti_drive(args.data, args.frames)
    n = len(source)
    scan_mb = sum(p.stat().st_size for p in (source.sequence_dir / "velodyne").iterdir()) / 1e6 / n
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, {n} scans ({scan_mb:.1f} MB each), batch {args.batch_size}, "
          f"builder workers {args.workers}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(flags_line())
    print(f"configurations: torch fp32 (reference), {', '.join(' '.join(c) for c in configs)}\n")
    print(f"{'model':16s} {'px':>4s} {'encoder':>9s} {'builder':>9s} {'ratio':>6s} "
          f"{'no-overlap':>10s} {'read+prep':>9s} {'bound':>6s} {'vs fp32':>8s}   "
          "(scans/s)")  # fmt: skip
    cpus = os.cpu_count() or 1
    for spec in args.models:
        base, reference = measure(spec, source, args, "torch", "fp32")
        report(spec, base, reference.describe(), cpus, base["builder"])
        for backend, precision in configs:
            if (backend, precision) == ("torch", "fp32"):
                continue
            rate, embedder = measure(spec, source, args, backend, precision)
            shown = f"[{backend} {precision}] {embedder.describe()}"
            report(spec, rate, shown, cpus, base["builder"])
    print(
        f"\nratio = builder / encoder (goal >= 0.9); bound = the best ratio possible if the "
        f"encoder alone keeps all {cpus} CPUs busy (CPU only); vs fp32 = builder scans/s over "
        f"torch fp32's (goal with liploc-vit-s16: >= 2x); load average "
        f"{os.getloadavg()[0]:.2f}\n{flags_line()}"
    )
    cleanup()


if __name__ == "__main__":
    main()
