"""The ``liploc`` command: thin wrappers over the core.

Each subcommand lives in its own module of this package with two functions:
``add_parser(subparsers)`` declares its arguments and ``run(args) -> int`` does the work.
Modules are imported lazily, only when their command runs, so ``liploc --help`` stays fast
and a missing optional dependency only breaks the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from liploc_ros import __version__
from liploc_ros.errors import LiplocError

#: command name -> (module under liploc_ros.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the end-to-end demo"),
    "embed": ("embed", "embed camera images and LiDAR scans with a model"),
    "convert-checkpoint": ("convert_checkpoint", "convert an authors' .pth to the liploc format"),
    "model-info": ("model_info", "describe a liploc model file"),
    "synth": ("synth", "generate synthetic driving data (KITTI, KITTI-360, bag layouts)"),
    "kitti2bag": ("kitti2bag", "convert a KITTI odometry sequence to a ROS 2 bag"),
    "build-map": ("build_map", "build a LiDAR map database from a bag, KITTI or synthetic drive"),
    "map-info": ("map_info", "describe a map database (and plot its route)"),
    "calibrate": (
        "calibrate",
        "measure what a map's scores mean on a labelled drive and store it in the map",
    ),
    "merge-maps": ("merge_maps", "merge map databases built with the same model"),
    "localize": (
        "localize",
        "localize camera frames of a bag, KITTI sequence or synthetic drive in a map",
    ),
    "run-localizer": (
        "run_localizer",
        "run the localizer node from config/localizer.yaml (no ros2 launch needed)",
    ),
    "play": ("play", "publish a ROS 2 bag's topics in real time (no ros2 bag play needed)"),
    "train": ("train", "train a LIP-Loc model"),
    "eval": ("evaluate", "evaluate a model: Recall@K on a sequence or across traversals"),
    "export": ("export", "write a model's encoders as ONNX (TensorRT) or OpenVINO IR"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liploc", description="LIP-Loc: camera localization in LiDAR maps."
    )
    parser.add_argument("--version", action="version", version=f"liploc_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse only the command name first, then let the command's own module declare the rest.
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"liploc_ros.cli.{args._module}")
    command_parser = argparse.ArgumentParser(
        prog=f"liploc {args.command}", description=COMMANDS[args.command][1]
    )
    module.add_parser(command_parser)
    command_args = command_parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # FAISS logs every optional CPU-specific library it fails to find at INFO level.
        logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return int(module.run(command_args) or 0)
    except LiplocError as err:
        print(f"liploc {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"liploc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
