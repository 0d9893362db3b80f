"""Encoder speed and parity per inference backend and precision, and the best speed-up.

For the authors' ViT-S/16 at 224 px (liploc-vit-s16, random weights: the same compute as
trained ones) and the shipped demo model (models/liploc_demo.safetensors), both encoders
(camera, LiDAR), in every backend and precision available on this machine:

- torch fp32 (the reference), torch bf16 where the CPU has bf16 matrix units;
- openvino fp32, bf16 where the CPU and OpenVINO have it, and int8 (NNCF) (``pip install
  .[openvino]``);
- onnxruntime fp32 and int8 (static QDQ) (``pip install .[onnx]``);
- **auto**: what ``backend: auto`` chooses here (run last, so that it sees the INT8 models
  the int8 rows made);
- on CUDA (``--device cuda``): torch fp32 / fp16, onnxruntime's CUDA provider and auto
  (``--configs onnxruntime:fp16`` adds its TensorRT provider: minutes to build the engine);

INT8 models are calibrated on ``--calibration`` (default ``synthetic:0:0:400``: 300
calibration and 100 held-out frames, verified against fp32 before use; minutes for ViT-S on
two cores the first time, then cached). A refused INT8 model runs fp32, and its row says so.

at batch 1 (a live camera) and 32 (map building): ms per frame (median over runs, the
configurations interleaved run by run so that load from other processes hits all alike)
and the smallest cosine of the embeddings to torch fp32's over the frames (32 rendered
synthetic frames, preprocessed as each model expects). Then the localizer's own work per
frame, end to end: a KITTI-sized (1242 x 375) RGB frame preprocessed and embedded at batch
1 (``Embedder.embed_images``) with liploc-vit-s16, p50 per configuration. The last lines
give the CPU's relevant flags, the best configuration and its speed-up over torch fp32, and
what ``auto`` chose with how far it is from the best (issue 22: within 10 %).

Conversions (ONNX export, OpenVINO IR) are made once and cached (the demo model's beside
it, the random ViT-S's in ~/.cache/liploc_ros or $LIPLOC_CACHE_DIR): the first run spends
about a minute per backend converting. ``--configs torch:fp32 torch:bf16 ...`` picks the
configurations by hand (bf16 on a CPU without bf16 units is emulated: slow, but it shows
the parity).

    .venv/bin/python bench/bench_backends.py [--repeats 5] [--frames 32] [--threads N]
        [--device cpu|cuda] [--configs BACKEND:PRECISION ...] [--models vit demo]
        [--calibration SPEC] [--calibration-frames 300] [--held-out 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from liploc_ros.device import cpu_has_bf16, resolve_device
from liploc_ros.model import (
    Embedder,
    LoadedModel,
    create_model,
    load_model,
    model_preset,
    wrap_model,
)
from liploc_ros.model.backends import available_backends
from liploc_ros.model.backends.calibration import CalibrationConfig, CalibrationSet
from liploc_ros.model.backends.machine import flags_line
from liploc_ros.paths import models_dir
from liploc_ros.preprocess import camera_input, lidar_input

REFERENCE = ("torch", "fp32")
AUTO = ("auto", "auto")
KITTI_SIZE = (1242, 375)


def default_configs(device: torch.device) -> list[tuple[str, str]]:
    """The (backend, precision) pairs that run natively on ``device`` here."""
    have = available_backends()
    configs = [REFERENCE]
    if device.type == "cuda":
        configs.append(("torch", "fp16"))
        if "onnxruntime" in have:
            import onnxruntime as ort

            # TensorRT's fp16 (onnxruntime:fp16) builds an engine for minutes: --configs
            if "CUDAExecutionProvider" in ort.get_available_providers():
                configs.append(("onnxruntime", "fp32"))
        return [*configs, AUTO]
    if cpu_has_bf16():
        configs.append(("torch", "bf16"))
    if "openvino" in have:
        import importlib.util

        from liploc_ros.model.backends.openvino_backend import openvino_has_bf16

        configs.append(("openvino", "fp32"))
        if cpu_has_bf16() and openvino_has_bf16():
            configs.append(("openvino", "bf16"))
        if importlib.util.find_spec("nncf") is not None:
            configs.append(("openvino", "int8"))
    if "onnxruntime" in have:
        configs += [("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    return [*configs, AUTO]


def load_models(names: list[str]) -> list[tuple[str, LoadedModel]]:
    out = []
    for name in names:
        if name == "vit":
            torch.manual_seed(0)  # fixed weights: the same fingerprint, so the cache is reused
            out.append(
                ("liploc-vit-s16", wrap_model(create_model(model_preset("liploc-vit-s16"))))
            )
        elif name == "demo":
            out.append(("demo", load_model(models_dir() / "liploc_demo.safetensors")))
        else:
            raise SystemExit(f"unknown model {name!r}: use vit and/or demo")
    return out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def encoder_rows(
    name: str,
    loaded: LoadedModel,
    embedders: dict[tuple[str, str], Embedder],
    frames: list,
    args: argparse.Namespace,
) -> list[tuple]:
    """(model, encoder, backend, precision, batch, ms/frame, min cosine) per configuration."""
    pre = loaded.preprocess
    sides = {
        "camera": np.stack([camera_input(f.image, pre) for f in frames]),
        "lidar": np.stack([lidar_input(f.points, pre) for f in frames]),
    }
    rows = []
    for side, batch_in in sides.items():
        embed = {key: getattr(e, f"embed_{side}") for key, e in embedders.items()}
        reference = embed[REFERENCE](batch_in)
        for batch in (1, len(frames)):
            chunks = [batch_in[i : i + batch] for i in range(0, len(batch_in), batch)]
            chunks = chunks[: max(1, args.single_frames)] if batch == 1 else chunks
            outputs: dict[tuple[str, str], list] = {}
            times: dict[tuple[str, str], list[float]] = {key: [] for key in embedders}
            for key, fn in embed.items():  # warm-up, and the embeddings for the cosine
                outputs[key] = [fn(c) for c in chunks]
            for _ in range(args.repeats):
                for key, fn in embed.items():
                    times[key].append(sum(timed(lambda c=c, fn=fn: fn(c)) for c in chunks))
            frames_timed = sum(len(c) for c in chunks)
            for key in embedders:
                got = np.concatenate(outputs[key])
                cos = min_cosine(got, reference[: len(got)])
                ms = 1e3 * statistics.median(times[key]) / frames_timed
                rows.append((name, side, *key, batch, ms, cos))
    return rows


def kitti_frame(frame_image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(frame_image, KITTI_SIZE, interpolation=cv2.INTER_CUBIC)


def make_embedder(
    loaded: LoadedModel,
    config: tuple[str, str],
    device: torch.device,
    batch_size: int,
    args: argparse.Namespace,
) -> Embedder:
    backend, precision = config
    calibration = None
    if precision == "int8":
        conf = CalibrationConfig(frames=args.calibration_frames, held_out=args.held_out)
        calibration = CalibrationSet(args.calibration, conf)
    return Embedder(loaded, device=device, precision=precision, backend=backend,
                    cache_dir=args.cache_dir, batch_size=batch_size,
                    calibration=calibration)  # fmt: skip


def label(config: tuple[str, str], embedder: Embedder) -> str:
    """``backend precision`` as run (auto: what it chose; a refused INT8: what ran)."""
    ran = f"{embedder.backend} {embedder.precision}"
    if config == AUTO:
        return f"auto -> {ran}"
    return ran if ran == " ".join(config) else f"{' '.join(config)} (ran {ran})"


def end_to_end(
    embedders: dict[tuple[str, str], Embedder], image: np.ndarray, iterations: int
) -> dict[tuple[str, str], float]:
    """p50 ms of ``embed_images([image])`` per configuration, interleaved frame by frame."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in embedders}
    for e in embedders.values():
        e.embed_images([image])
    for _ in range(iterations):
        for key, e in embedders.items():
            times[key].append(1e3 * timed(lambda e=e: e.embed_images([image])))
    return {key: statistics.median(t) for key, t in times.items()}


def report(
    rows: list[tuple],
    e2e: dict[tuple[str, str], float],
    labels: dict[tuple[str, str], str],
    args: argparse.Namespace,
) -> None:
    """The tables, then the flags, the best configuration and what auto chose."""
    print(f"\n{'model':16s} {'encoder':7s} {'backend':12s} {'prec':5s} {'batch':>5s} "
          f"{'ms/frame':>9s} {'speed-up':>8s} {'min cos':>9s}")  # fmt: skip
    base = {(r[0], r[1], r[4]): r[5] for r in rows if (r[2], r[3]) == REFERENCE}
    for model, side, backend, precision, batch, ms, cos in rows:
        speed = base[model, side, batch] / ms
        print(f"{model:16s} {side:7s} {backend:12s} {precision:5s} {batch:5d} {ms:9.2f} "
              f"{speed:7.2f}x {cos:9.6f}")  # fmt: skip
    worst = min(r[6] for r in rows)
    print(
        f"\nsmallest cosine to torch fp32 over all rows: {worst:.6f} (INT8 rows: verified "
        "against fp32 on held-out frames when built; bound 0.98, bf16 0.99)"
    )
    if not e2e:
        print("best end-to-end speed-up over torch fp32: n/a (liploc-vit-s16 not run)")
        return
    print(f"\nend to end per frame, liploc-vit-s16, KITTI-sized RGB frame, batch 1 (p50 of "
          f"{args.e2e_iterations}), load average {os.getloadavg()[0]:.2f}:")  # fmt: skip
    for config, ms in e2e.items():
        print(f"  {labels[config]:40s} {ms:8.2f} ms  {e2e[REFERENCE] / ms:5.2f}x")
    fixed = {c: ms for c, ms in e2e.items() if c != AUTO}
    best = min(fixed, key=fixed.__getitem__)
    print(f"\n{flags_line()}")
    auto_part = "auto not run"
    if AUTO in e2e:
        gap = e2e[AUTO] / fixed[best] - 1
        auto_part = (f"auto chose {labels[AUTO].removeprefix('auto -> ')}: {e2e[AUTO]:.2f} ms, "
                     f"{e2e[REFERENCE] / e2e[AUTO]:.2f}x, {100 * gap:+.1f}% vs the best "
                     f"({'within' if gap <= 0.10 else 'NOT within'} 10%)")  # fmt: skip
    print(
        f"best end-to-end speed-up over torch fp32: {e2e[REFERENCE] / e2e[best]:.2f}x "
        f"({labels[best]}, {e2e[best]:.2f} ms vs {e2e[REFERENCE]:.2f} ms); {auto_part}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit", "demo"], help="vit, demo")
    parser.add_argument("--configs", nargs="+", metavar="BACKEND:PRECISION",
                        help="configurations to run (default: all native here)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--frames", type=int, default=32, help="frames (= the large batch)")
    parser.add_argument("--single-frames", type=int, default=16,
                        help="frames timed one at a time per run at batch 1 (16)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--e2e-iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch / runtime CPU threads")
    parser.add_argument("--cache-dir", type=Path, help="where converted models are cached")
    parser.add_argument(
        "--calibration",
        default="synthetic:0:0:400",
        help="INT8 calibration and verification frames (a source spec)",
    )
    parser.add_argument("--calibration-frames", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=100)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.configs:
        configs = [tuple(c.split(":", 1)) for c in args.configs]
        if REFERENCE not in configs:
            configs.insert(0, REFERENCE)
    else:
        configs = default_configs(device)

    from liploc_ros.datasets.synthetic import make_drive

    drive = make_drive(0, 0, args.frames)
    frames = [drive.frame(i) for i in range(len(drive))]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"device {device}, CPU bf16 units: {cpu_has_bf16()}, backends installed: "
        f"{', '.join(available_backends())}, load average {os.getloadavg()[0]:.2f}"
    )
    print(flags_line())
    print(f"configurations: {', '.join(f'{b} {p}' for b, p in configs)}\n")
    rows: list[tuple] = []
    e2e: dict[tuple[str, str], float] = {}
    labels: dict[tuple[str, str], str] = {}
    for name, loaded in load_models(args.models):
        embedders = {}
        for config in configs:
            t0 = time.perf_counter()
            embedder = make_embedder(loaded, config, device, args.frames, args)
            embedders[config] = embedder
            print(f"  {name}: {' '.join(config)} ready in {time.perf_counter() - t0:.1f} s")
        rows += encoder_rows(name, loaded, embedders, frames, args)
        for config, embedder in embedders.items():
            print(f"  {name}: {' '.join(config)}: {embedder.describe()}")
        if name == "liploc-vit-s16":
            # the localizer's own setting: batch 1 (auto measures and chooses for it)
            live = {c: make_embedder(loaded, c, device, 1, args) if c == AUTO else e
                    for c, e in embedders.items()}  # fmt: skip
            e2e = end_to_end(live, kitti_frame(frames[0].image), args.e2e_iterations)
            labels = {c: label(c, e) for c, e in live.items()}
            print(f"  auto at batch 1: {live[AUTO].describe() if AUTO in live else 'not run'}")
    report(rows, e2e, labels, args)


if __name__ == "__main__":
    main()
