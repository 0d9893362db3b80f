"""``liploc embed``: embeddings of image files and KITTI-style scans, saved as npz.

    liploc embed --model M.safetensors --images a.png b.png --scans a.bin b.bin --out emb.npz

The npz holds ``camera`` (images x D) and ``lidar`` (scans x D) float32 arrays in argument
order, plus the model fingerprint; it is written atomically and without pickle.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="liploc model or authors' .pth")
    parser.add_argument("--images", type=Path, nargs="*", default=[], help="PNG/JPEG files")
    parser.add_argument("--scans", type=Path, nargs="*", default=[], help="float32 x4 .bin files")
    parser.add_argument("--out", type=Path, required=True, help="output .npz")
    add_encoder_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.frame_files import read_image, read_scan
    from liploc_ros.io_utils import write_bytes_atomic
    from liploc_ros.model.model_file import load_embedder

    if not args.images and not args.scans:
        raise ConfigError("nothing to embed: give --images and/or --scans")
    embedder = load_embedder(
        args.model, device=args.device, precision=args.precision, backend=args.backend
    )
    loaded = embedder.loaded
    dim = embedder.embed_dim
    camera = np.zeros((0, dim), np.float32)
    lidar = np.zeros((0, dim), np.float32)
    if args.images:
        camera = embedder.embed_images([read_image(p) for p in args.images], progress=True)
    if args.scans:
        lidar = embedder.embed_scans([read_scan(p) for p in args.scans], progress=True)
    buf = io.BytesIO()
    np.savez(buf, camera=camera, lidar=lidar, fingerprint=np.array(loaded.fingerprint))
    write_bytes_atomic(args.out, buf.getvalue())
    print(
        f"embedded {len(args.images)} image(s) and {len(args.scans)} scan(s) with model "
        f"{loaded.fingerprint} ({dim}-d) with {embedder.describe()}: {args.out}"
    )
    return 0
