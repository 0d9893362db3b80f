"""``liploc train``: train a LIP-Loc model from a YAML config.

liploc train --config config/train_synthetic.yaml
liploc train --config config/train_kitti_vit.yaml --set train.epochs=10
liploc train --config config/train_kitti_vit.yaml --resume runs/kitti_vit
torchrun --nproc-per-node 4 -m liploc_ros.cli train --config config/train_kitti_vit.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="training config (YAML)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        help="continue from a training state (last.ckpt.safetensors) or its output folder",
    )
    parser.add_argument("--output", default=None, help="output folder (overrides output_dir)")
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")


def run(args: argparse.Namespace) -> int:
    from liploc_ros.training.config import config_to_yaml, load_train_config

    settings = list(args.settings)
    if args.output is not None:
        settings.append(f"output_dir={args.output}")
    config_path = args.config
    if config_path is None and args.resume is not None:
        # `--resume DIR` alone continues the run as it was configured
        folder = Path(args.resume) if Path(args.resume).is_dir() else Path(args.resume).parent
        if (folder / "config.yaml").is_file():
            config_path = folder / "config.yaml"
    config = load_train_config(config_path, settings)
    if args.print_config:
        print(config_to_yaml(config), end="")
        return 0

    from liploc_ros.training.train import train

    result = train(config, resume=args.resume)
    minutes = result.seconds / 60
    print(
        f"trained {result.epochs_done} epoch(s) in {minutes:.1f} min; best validation loss "
        f"{result.best_val_loss:.4f} at epoch {result.best_epoch}"
    )
    if result.history and result.history[-1].get("recall@1"):
        for name, value in result.history[-1]["recall@1"].items():
            print(f"  Recall@1 {name}: {value:.3f}")
    print(f"best model: {result.best_model}")
    if config.export and result.best_model is not None:
        print(f"exported to: {config.export}")
    print(f"outputs: {result.output_dir}")
    return 0
