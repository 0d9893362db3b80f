"""``liploc export``: a model's two encoders for another runtime (ONNX, OpenVINO IR, TensorRT),
in fp32 or a reduced precision that is verified first.

    liploc export models/liploc_demo.safetensors --format onnx --out demo_onnx/
    liploc export their_vit.pth --format openvino --out vit_ov/ --verify
    liploc export M --format openvino --precision int8 --calibration bag:drive.mcap --out q/
    liploc export M --format tensorrt --precision fp16 --out trt/        # on an NVIDIA GPU

ONNX files have a dynamic batch axis (input ``image`` [batch, 3, S, S] float32, already
preprocessed; output ``embedding`` [batch, D]) and are what TensorRT's trtexec and Jetson
users take: the manifest (liploc_export.json) holds the trtexec command for each encoder.
Every file carries the model's fingerprint, which a map checks.

``--precision int8`` quantizes on frames of ``--calibration SOURCE`` (the map's own drive:
a few hundred camera frames and range images; any spec ``--source`` takes) with NNCF
(OpenVINO) or ONNX Runtime's static QDQ quantizer (ONNX), then checks each encoder on
held-out frames of the same drive: embedding cosine to fp32 and Recall@1 against an fp32
map. The figures are printed and stored; an encoder that fails is refused (exit 1). The
result is also kept in the backends' cache, where ``--backend openvino/onnxruntime
--precision int8`` and ``auto`` find it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from liploc_ros.errors import BackendError

#: the embedding cosine to PyTorch fp32 an fp32 export must reach
PARITY_COSINE = 0.999


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="liploc .safetensors model or authors' .pth")
    parser.add_argument(
        "--format",
        choices=("onnx", "openvino", "tensorrt"),
        required=True,
        help="onnx (ONNX Runtime, TensorRT), openvino (IR .xml + .bin) or tensorrt (.plan "
        "engines, built on this machine's NVIDIA GPU)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16", "int8"),
        default="fp32",
        help="fp32 (default); int8 (onnx, openvino: calibrated and verified); bf16 (openvino: "
        "verified); fp16 (tensorrt)",
    )
    parser.add_argument(
        "--calibration",
        metavar="SOURCE",
        help="frames to calibrate INT8 on and to verify with: the map's drive, e.g. "
        "bag:PATH, kitti:ROOT:SEQ, synthetic:SEED:TRAVERSAL:FRAMES (required for int8)",
    )
    parser.add_argument(
        "--calibration-frames", type=int, default=300, help="calibration frames (300)"
    )
    parser.add_argument(
        "--held-out", type=int, default=100, help="held-out verification frames (100)"
    )
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
        help="largest batch in the printed trtexec command / the TensorRT engines (32)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="run an fp32 export in its runtime and compare with PyTorch fp32 (reduced "
        "precisions are always verified)",
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.deploy.export import export_model
    from liploc_ros.deploy.verify import verify_export
    from liploc_ros.model.backends.calibration import CalibrationConfig, CalibrationSet
    from liploc_ros.model.model_file import load_model_file

    loaded = load_model_file(args.model, normalize=args.normalize)
    out: Path = args.out.expanduser()
    calibration = None
    if args.calibration:
        config = CalibrationConfig(frames=args.calibration_frames, held_out=args.held_out)
        calibration = CalibrationSet(args.calibration, config)
    manifest = export_model(loaded, out, args.format, max_batch=args.max_batch,
                            precision=args.precision, calibration=calibration)  # fmt: skip
    print(
        f"exported {loaded.model_config.name} (fingerprint {loaded.fingerprint}) as "
        f"{args.format} {args.precision} to {out}: "
        + ", ".join(e["file"] for e in manifest["encoders"].values())
        + ", liploc_export.json"
    )
    for side, result in manifest.get("verification", {}).items():
        print(f"  verified, {side}: cosine to fp32 mean {result['cosine_mean']:.5f} (min "
              f"{result['cosine_min']:.5f}), Recall@1 {result['recall']:.3f} vs fp32 "
              f"{result['recall_fp32']:.3f}, top-1 agreement {result['top1_agreement']:.3f} "
              f"on {result['frames']} held-out frames of {result['source']}")  # fmt: skip
    for side, entry in manifest["encoders"].items():
        if "trtexec" in entry:
            print(f"  TensorRT, {side}: (cd {out} && {entry['trtexec']})")
    if args.verify and args.format != "tensorrt" and args.precision == "fp32":
        cosines = verify_export(loaded, out, manifest)
        print(
            "  verified against PyTorch fp32: min cosine "
            + ", ".join(f"{side} {c:.6f}" for side, c in cosines.items())
        )
        if min(cosines.values()) < PARITY_COSINE:
            raise BackendError(f"the export misses the parity bound (cosine {PARITY_COSINE})")
    return 0
