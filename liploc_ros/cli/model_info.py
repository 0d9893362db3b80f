"""``liploc model-info``: what a model file holds, without running it.

A liploc .safetensors file is described from its header alone (no weights are read); an
authors' .pth is loaded (weights_only) to infer its architecture. The backends' cache for the
model is described too (``inference``): what ``auto`` chose on which machine and how fast it
was, the INT8 models with their calibration and verification figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a liploc .safetensors file or an authors' .pth")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def describe(path: Path) -> dict[str, Any]:
    """The model-info dictionary of a liploc file or an authors' checkpoint."""
    from liploc_ros.config import to_dict
    from liploc_ros.model.authors import load_authors_checkpoint
    from liploc_ros.model.backends.cache_report import cache_report
    from liploc_ros.model.file_kind import model_file_kind
    from liploc_ros.model.liploc_file import read_model_info
    from liploc_ros.paths import resolve_shared_path

    path = resolve_shared_path(path)
    if model_file_kind(path) == "safetensors":
        info = read_model_info(path)
        info["inference"] = cache_report(path, info["fingerprint"])
        return info
    loaded = load_authors_checkpoint(path)
    return {
        "inference": cache_report(path, loaded.fingerprint),
        "path": str(path),
        "format": "authors .pth (PyTorch state_dict)",
        "model_config": to_dict(loaded.model_config),
        "preprocess": to_dict(loaded.preprocess),
        "embed_dim": loaded.embed_dim,
        "normalize": "unknown (not stored in an authors' checkpoint)",
        "fingerprint": loaded.fingerprint,
        "sha256": loaded.sha256,
        "num_parameters": sum(p.numel() for p in loaded.model.parameters()),
        "file_bytes": path.stat().st_size,
    }


def run(args: argparse.Namespace) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cfg, pre = info["model_config"], info["preprocess"]
    lidar = pre["lidar"]

    def encoder(side: str) -> str:
        fc = cfg[f"{side}_fc_dim"]
        return cfg[f"{side}_backbone"] + (f" + Linear -> {fc}" if fc else "")

    lines = [
        ("file", f"{info['path']} ({info['file_bytes']} bytes, {info['format']})"),
        ("model", cfg["name"]),
        ("camera encoder", f"{encoder('camera')}, input {pre['camera']['image_size']} px"),
        ("lidar encoder", f"{encoder('lidar')}, input {pre['lidar_image_size']} px"),
        ("global pool", cfg["global_pool"] or "backbone default"),
        ("embedding", f"{info['embed_dim']}-d, L2-normalised: {info['normalize']}"),
        (
            "range image",
            f"{lidar['sensor']} {lidar['height']}x{lidar['width']}, fov "
            f"{lidar['fov_down_deg']}..{lidar['fov_up_deg']} deg, max range "
            f"{lidar['max_range']} m, distance threshold {lidar['distance_threshold']}, "
            f"crop {lidar['crop']}, empty {lidar['empty_mode']}",
        ),
        ("parameters", f"{info['num_parameters']:,}"),
        ("fingerprint", info["fingerprint"]),
        ("sha256", info["sha256"]),
    ]
    if info.get("training"):
        lines.append(("training", json.dumps(info["training"], sort_keys=True)))
    from liploc_ros.model.backends.cache_report import report_lines

    lines += report_lines(info["inference"])
    for key, value in lines:
        print(f"{key + ':':16s}{value}")
    return 0
