"""``liploc convert-checkpoint``: an authors' .pth -> a liploc .safetensors model file.

The weights are loaded strictly into the architecture their keys describe and saved with
the preprocessing the model expects, so that the converted file carries everything needed
to use it (and is loaded without unpickling anything).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from liploc_ros.errors import CheckpointError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="the authors' .pth state_dict")
    parser.add_argument("output", type=Path, help="the .safetensors file to write")
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="the checkpoint is the authors' 'Norm' variant (L2-normalised embeddings)",
    )
    parser.add_argument(
        "--sensor", default="hdl64e", help="LiDAR preset of the range images (default hdl64e)"
    )
    parser.add_argument(
        "--distance-threshold",
        type=float,
        default=None,
        metavar="M",
        help="pre-filter points beyond M metres (the authors' KITTI-360 runs: 50)",
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.model.authors import load_authors_checkpoint
    from liploc_ros.model.liploc_file import save_model
    from liploc_ros.preprocess.config import PreprocessConfig, sensor_preset

    if args.output.resolve() == args.checkpoint.resolve():
        raise CheckpointError(f"the output {args.output} would overwrite the checkpoint")
    lidar = sensor_preset(args.sensor, distance_threshold=args.distance_threshold)
    preprocess = replace(PreprocessConfig(), lidar=lidar)
    loaded = load_authors_checkpoint(
        args.checkpoint, normalize=args.normalize, preprocess=preprocess
    )
    fingerprint = save_model(
        args.output,
        loaded.model,
        loaded.preprocess,
        extra={
            "source": "authors",
            "checkpoint": args.checkpoint.name,
            "variant": loaded.model_config.name,
        },
    )
    cfg = loaded.model_config
    print(f"variant:     {cfg.name} ({cfg.camera_backbone} / {cfg.lidar_backbone})")
    print(f"normalize:   {cfg.normalize}")
    print(f"fingerprint: {fingerprint}")
    print(f"output:      {args.output}")
    return 0
