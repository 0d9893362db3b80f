"""``liploc run-localizer``: the localizer node from its parameter file, without ``ros2 launch``.

    liploc run-localizer --map town.lmap --model models/liploc_demo.safetensors \\
        --image-topic /camera/image_raw [--device cpu] [--namespace car1] [--use-sim-time]

The same node and the same YAML as ``ros2 launch liploc_ros localize.launch.py``: the node
runs in this process with ``--ros-args --params-file CONFIG -p ...``; flags left out keep
the file's values; ``-p NAME:=VALUE`` sets any other parameter. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from liploc_ros.cli.encoder_flags import add_encoder_arguments, encoder_options
from liploc_ros.errors import ConfigError

NODE = "localizer_node"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="parameter file (default: the shipped config/localizer.yaml)",
    )
    parser.add_argument("--map", help="map database file (parameter map_path)")
    parser.add_argument("--model", help="model file, the map's (parameter model)")
    parser.add_argument(
        "--image-topic",
        action="append",
        default=[],
        metavar="TOPIC",
        help="camera topic; repeat it or separate by commas for several (parameter image_topics)",
    )
    add_encoder_arguments(parser, defaults=False, node=True)
    parser.add_argument("--namespace", default="", help="namespace of the node")
    parser.add_argument("--use-sim-time", action="store_true", help="use the /clock topic")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="any other parameter, as with --ros-args -p",
    )


def _ros_string(value: str) -> str:
    """A string for ``-p name:=value`` that YAML cannot read as a number or boolean."""
    return "'" + value.replace("'", "''") + "'"


def _split_topics(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def ros_arguments(args: argparse.Namespace, params_file: Path) -> list[str]:
    """The node's command line: ``localizer_node --ros-args --params-file ... -p ...``."""
    out = [NODE, "--ros-args", "--params-file", str(params_file)]
    params: list[tuple[str, str]] = []
    if args.model:
        params.append(("model", _ros_string(str(Path(args.model).expanduser()))))
    if args.map:
        params.append(("map_path", _ros_string(str(Path(args.map).expanduser()))))
    topics = _split_topics(args.image_topic)
    if topics:
        params.append(("image_topics", "[" + ",".join(_ros_string(t) for t in topics) + "]"))
    for name, value in encoder_options(args).items():
        params.append((name, _ros_string(value)))
    if args.use_sim_time:
        params.append(("use_sim_time", "true"))
    for name, value in params:
        out += ["-p", f"{name}:={value}"]
    for item in args.param:
        if ":=" not in item:
            raise ConfigError(f"-p {item!r}: expected NAME:=VALUE")
        out += ["-p", item]
    if args.namespace.strip("/"):
        out += ["-r", f"__ns:=/{args.namespace.strip('/')}"]
    return out


def run(args: argparse.Namespace) -> int:
    from liploc_ros.paths import config_file

    config = (args.config or config_file("localizer.yaml")).expanduser()
    if not config.is_file():
        raise ConfigError(f"parameter file {config} does not exist")
    from liploc_ros.ros.localizer_node import main

    with tempfile.TemporaryDirectory(prefix="liploc-run-localizer-") as folder:
        params_file = config
        if args.namespace.strip("/"):
            # a file keyed `localizer_node` does not apply to /ns/localizer_node
            from liploc_ros.io_utils import write_text_atomic
            from liploc_ros.param_files import namespaced_file

            params_file = Path(folder) / "localizer.yaml"
            write_text_atomic(params_file, namespaced_file(config, NODE, args.namespace))
        return main(ros_arguments(args, params_file))
