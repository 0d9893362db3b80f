"""Accuracy of each reduced precision against fp32 (no timing: safe on a busy machine).

Two figures of issue 22, for every configuration given (default: torch bf16, openvino bf16,
openvino int8, onnxruntime int8, as far as they run here):

- **liploc-vit-s16** (random weights, fixed seed): the camera encoder's embedding cosine to
  fp32 on ``--queries`` frames of another drive, and the **top-1 agreement** with fp32 on a
  ``--map-frames`` (1,000) entry fp32 map: the share of queries whose best map entry is the
  one fp32 finds (goals: cosine >= 0.99 for bf16, >= 0.98 for INT8; agreement >= 0.98);
- **the demo model**: Recall@1 at 20 m on towns 0, 1, 2 and 100 (map: fp32 LiDAR embeddings
  of traversal 0; queries: traversal 1's camera frames) with the camera encoder at each
  precision against the fp32 map, beside fp32's own figure (goal: within 0.01). ``liploc eval
  --precision P --backend B`` gives the same protocol with both encoders at P.

INT8 encoders are calibrated on ``--calibration`` (not one of the towns measured) and
verified before use; a refused one is reported as such. The CPU's flags are printed.

    .venv/bin/python bench/bench_precision.py [--models vit demo] [--map-frames 1000]
        [--queries 200] [--configs openvino:int8 ...] [--calibration synthetic:7:0:400]
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import torch

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.device import cpu_has_bf16
from liploc_ros.model import LoadedModel, create_model, load_model, model_preset, wrap_model
from liploc_ros.model.backends import available_backends, create_runner
from liploc_ros.model.backends.acceptance import embed, row_cosines
from liploc_ros.model.backends.calibration import CalibrationConfig, CalibrationSet
from liploc_ros.model.backends.machine import flags_line
from liploc_ros.paths import models_dir
from liploc_ros.preprocess import camera_input, lidar_input

TOWNS = (0, 1, 2, 100)


def default_configs() -> list[tuple[str, str]]:
    have = available_backends()
    configs = [("torch", "bf16")] if cpu_has_bf16() else []
    if "openvino" in have:
        from liploc_ros.model.backends.openvino_backend import openvino_has_bf16

        if cpu_has_bf16() and openvino_has_bf16():
            configs.append(("openvino", "bf16"))
        if importlib.util.find_spec("nncf") is not None:
            configs.append(("openvino", "int8"))
    if "onnxruntime" in have:
        configs.append(("onnxruntime", "int8"))
    return configs


def inputs(loaded: LoadedModel, spec: tuple[int, int, int], side: str, step: int = 1) -> tuple:
    """(preprocessed inputs of ``side``, (N, 2) positions) of a synthetic drive."""
    drive = make_drive(*spec)
    pre = loaded.preprocess
    out, xy = [], []
    for i in range(0, len(drive), step):
        frame = drive.frame(i, image=side == "camera", points=side == "lidar")
        data = frame.image if side == "camera" else frame.points
        out.append(camera_input(data, pre) if side == "camera" else lidar_input(data, pre))
        xy.append(frame.pose[:2, 3])
    return np.stack(out).astype(np.float32), np.asarray(xy)


def fp32_runner(loaded: LoadedModel, side: str):
    """The fastest exact fp32 runner (OpenVINO f32 agrees with torch to 1e-5)."""
    backend = "openvino" if "openvino" in available_backends() else "torch"
    return create_runner(backend, loaded, device="cpu", precision="fp32", sides=(side,))


def runner_of(loaded: LoadedModel, config: tuple[str, str], args: argparse.Namespace):
    calibration = None
    if config[1] == "int8":
        conf = CalibrationConfig(frames=args.calibration_frames, held_out=args.held_out)
        calibration = CalibrationSet(args.calibration, conf)
    return create_runner(config[0], loaded, device="cpu", precision=config[1],
                         sides=("camera",), calibration=calibration)  # fmt: skip


def top1(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    return (queries.astype(np.float64) @ database.astype(np.float64).T).argmax(axis=1)


def vit_rows(configs: list[tuple[str, str]], args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    loaded = wrap_model(create_model(model_preset("liploc-vit-s16")))
    maps, _ = inputs(loaded, (0, 0, args.map_frames), "lidar")
    queries, _ = inputs(loaded, (0, 1, args.queries), "camera")
    database = embed(fp32_runner(loaded, "lidar"), "lidar", maps)
    reference = embed(fp32_runner(loaded, "camera"), "camera", queries)
    best = top1(reference, database)
    print(f"\nliploc-vit-s16 (random, seed 0): {len(queries)} camera queries of "
          f"synthetic:0:1 against a {len(database)}-entry fp32 map of synthetic:0:0")  # fmt: skip
    print(f"  {'configuration':28s} {'cos mean':>9s} {'cos min':>9s} {'top-1 agreement':>16s}")
    for config in configs:
        runner = runner_of(loaded, config, args)
        shown = f"{config[0]} {config[1]}"
        if runner.precision != config[1]:
            shown += f" (refused: ran {runner.precision})"
        got = embed(runner, "camera", queries)
        cos = row_cosines(got, reference)
        agree = float((top1(got, database) == best).mean())
        print(f"  {shown:28s} {cos.mean():9.5f} {cos.min():9.5f} {agree:16.3f}")


def recall(queries: np.ndarray, q_xy: np.ndarray, database: np.ndarray, m_xy: np.ndarray) -> float:
    best = top1(queries, database)
    return float((np.linalg.norm(m_xy[best] - q_xy, axis=1) <= 20.0).mean())


def demo_rows(configs: list[tuple[str, str]], args: argparse.Namespace) -> None:
    loaded = load_model(models_dir() / "liploc_demo.safetensors")
    print(
        "\ndemo model: Recall@1 at 20 m, camera at each precision against the fp32 map "
        "(map synthetic:T:0:300, queries synthetic:T:1:300)"
    )
    names = ["fp32", *(f"{b} {p}" for b, p in configs)]
    print(f"  {'town':>5s} " + " ".join(f"{n:>17s}" for n in names))
    runners = {c: runner_of(loaded, c, args) for c in configs}
    for town in TOWNS:
        maps, m_xy = inputs(loaded, (town, 0, 300), "lidar")
        queries, q_xy = inputs(loaded, (town, 1, 300), "camera")
        database = embed(fp32_runner(loaded, "lidar"), "lidar", maps)
        figures = [recall(embed(fp32_runner(loaded, "camera"), "camera", queries), q_xy,
                          database, m_xy)]  # fmt: skip
        for config, runner in runners.items():
            note = "" if runner.precision == config[1] else "*"
            value = recall(embed(runner, "camera", queries), q_xy, database, m_xy)
            figures.append(f"{value:.3f}{note}")  # type: ignore[arg-type]
        cells = [f"{figures[0]:17.3f}", *(f"{f:>17s}" for f in figures[1:])]
        print(f"  {town:5d} " + " ".join(cells))
    print("  (* an INT8 model refused by its verification: fp32 ran instead)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit", "demo"], help="vit, demo")
    parser.add_argument("--configs", nargs="+", metavar="BACKEND:PRECISION")
    parser.add_argument("--map-frames", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--calibration", default="synthetic:7:0:400")
    parser.add_argument("--calibration-frames", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=100)
    args = parser.parse_args()
    configs = [tuple(c.split(":", 1)) for c in args.configs] if args.configs else (
        default_configs())  # fmt: skip
    print(flags_line())
    if "demo" in args.models:
        demo_rows(configs, args)  # type: ignore[arg-type]
    if "vit" in args.models:
        vit_rows(configs, args)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
