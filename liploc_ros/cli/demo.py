"""``liploc demo``: camera frames of one drive located among LiDAR scans of another.

A synthetic town is driven twice. The LiDAR scans of the first drive are embedded as the
map; the camera frames of the second drive are embedded as queries, and each query takes
the pose of its best-scoring map entry. Recall@1 at 20 m and the chance level are printed,
with the time each step took and a PNG of one camera frame beside its range image.

The model is ``models/liploc_demo.safetensors`` when it is there; otherwise a randomly
initialised small model, reported as UNTRAINED (its recall is then at chance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEMO_MODEL = "liploc_demo.safetensors"
SUCCESS_RADIUS_M = 20.0


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="synthetic town seed (default 0)")
    parser.add_argument("--frames", type=int, default=150, help="frames per drive (default 150)")
    parser.add_argument("--model", type=Path, default=None, help="a liploc model file")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
    from liploc_ros.datasets.synthetic.config import TownConfig
    from liploc_ros.model import Embedder
    from liploc_ros.preprocess import range_image
    from liploc_ros.viz import save_pair_figure

    clock = time.perf_counter()
    loaded, label = _load_model(args.model)
    print(f"model: {label}")
    cfg = loaded.model_config
    print(
        f"  fingerprint {loaded.fingerprint}, {cfg.camera_backbone} / {cfg.lidar_backbone}, "
        f"input {loaded.preprocess.camera.image_size} px"
    )
    embedder = Embedder(loaded, device=args.device)
    print(f"  device {embedder.device}, precision {embedder.precision}")

    t0 = time.perf_counter()
    town = make_town(TownConfig(seed=args.seed))
    mapping, query = SyntheticDrive(town, 0, args.frames), SyntheticDrive(town, 1, args.frames)
    map_frames = [mapping.frame(i, image=False) for i in range(len(mapping))]
    query_frames = [query.frame(i, points=False) for i in range(len(query))]
    render_s = time.perf_counter() - t0
    print(
        f"world: town seed {args.seed}, drives {mapping.name} (map) and {query.name} "
        f"(queries), {2 * args.frames} frames rendered in {render_s:.1f} s"
    )

    t0 = time.perf_counter()
    map_emb = embedder.embed_scans([f.points for f in map_frames])
    lidar_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    query_emb = embedder.embed_images([f.image for f in query_frames])
    camera_s = time.perf_counter() - t0
    print(
        f"embed: {len(map_frames)} scans in {lidar_s:.2f} s "
        f"({1e3 * lidar_s / len(map_frames):.1f} ms each), {len(query_frames)} images in "
        f"{camera_s:.2f} s ({1e3 * camera_s / len(query_frames):.1f} ms each), "
        f"{map_emb.shape[1]}-d embeddings"
    )

    map_xyz = mapping.poses[:, :3, 3]
    query_xyz = query.poses[:, :3, 3]
    best = np.argmax(query_emb @ map_emb.T, axis=1)
    errors = np.linalg.norm(query_xyz[:, :2] - map_xyz[best, :2], axis=1)
    recall = float(np.mean(errors < SUCCESS_RADIUS_M))
    near = np.linalg.norm(query_xyz[:, None, :2] - map_xyz[None, :, :2], axis=2) < SUCCESS_RADIUS_M
    chance = float(near.mean())
    print(
        f"localize: Recall@1 at {SUCCESS_RADIUS_M:.0f} m = {recall:.2f} over {len(best)} "
        f"queries (chance {chance:.2f}); median error {np.median(errors):.1f} m"
    )

    first = mapping.frame(0)
    pair = save_pair_figure(
        first.image,
        range_image(first.points, loaded.preprocess.lidar),
        args.out / "pair.png",
        title=f"{mapping.name}: frame 0",
    )
    print(f"figure: {pair}")
    print(f"done in {time.perf_counter() - clock:.1f} s")
    return 0


def _load_model(path: Path | None):
    """The given model, else the shipped demo model, else an untrained small one."""
    from liploc_ros.model import create_model, load_model, model_preset, wrap_model
    from liploc_ros.paths import models_dir
    from liploc_ros.preprocess import CameraConfig, PreprocessConfig

    if path is not None:
        return load_model(path), str(path)
    shipped = models_dir() / DEMO_MODEL
    if shipped.is_file():
        return load_model(shipped), f"{shipped} (trained on synthetic towns)"
    size = 96
    preprocess = PreprocessConfig(camera=CameraConfig(image_size=size), lidar_image_size=size)
    model = create_model(model_preset("liploc-tiny"), preprocess)
    return wrap_model(model), "UNTRAINED liploc-tiny (random weights: expect chance-level recall)"
