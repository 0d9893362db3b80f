"""``liploc export``: a model's two encoders for another runtime (ONNX, OpenVINO IR).

    liploc export models/liploc_demo.safetensors --format onnx --out demo_onnx/
    liploc export their_vit.pth --format openvino --out vit_ov/ --verify

ONNX files have a dynamic batch axis (input ``image`` [batch, 3, S, S] float32, already
preprocessed; output ``embedding`` [batch, D]) and are what TensorRT's trtexec and Jetson
users take: the manifest (liploc_export.json) holds the trtexec command for each encoder.
Every file carries the model's fingerprint, which a map checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from liploc_ros.errors import BackendError

#: the embedding cosine to PyTorch fp32 an export must reach
PARITY_COSINE = 0.999


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="liploc .safetensors model or authors' .pth")
    parser.add_argument(
        "--format",
        choices=("onnx", "openvino"),
        required=True,
        help="onnx (ONNX Runtime, TensorRT) or openvino (IR .xml + .bin)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument(
        "--normalize",
        action="store_true",
        default=None,
        help="an authors' .pth is their L2-normalised (Norm) variant",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="largest batch in the printed trtexec command (32)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="run the export in its runtime and compare with PyTorch fp32",
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.deploy import export_model
    from liploc_ros.deploy.verify import verify_export
    from liploc_ros.model.model_file import load_model_file

    loaded = load_model_file(args.model, normalize=args.normalize)
    out: Path = args.out.expanduser()
    manifest = export_model(loaded, out, args.format, max_batch=args.max_batch)
    print(
        f"exported {loaded.model_config.name} (fingerprint {loaded.fingerprint}) as "
        f"{args.format} to {out}: "
        + ", ".join(e["file"] for e in manifest["encoders"].values())
        + ", liploc_export.json"
    )
    if args.format == "onnx":
        for side, entry in manifest["encoders"].items():
            print(f"  TensorRT, {side}: (cd {out} && {entry['trtexec']})")
    if args.verify:
        cosines = verify_export(loaded, out, manifest)
        print(
            "  verified against PyTorch fp32: min cosine "
            + ", ".join(f"{side} {c:.6f}" for side, c in cosines.items())
        )
        if min(cosines.values()) < PARITY_COSINE:
            raise BackendError(f"the export misses the parity bound (cosine {PARITY_COSINE})")
    return 0
