"""``liploc build-map``: a drive (bag, KITTI, KITTI-360, synthetic) -> a map database file.

    liploc build-map --source synthetic:0:0:300 --model MODEL.safetensors --out map.lmap
    liploc build-map --kitti /data/kitti --sequence 08 --model liploc_vit.pth --out 08.lmap
    liploc build-map --bag run1/ --points-topic /ouster/points --sensor os1-64 ...
    liploc build-map ... --headings 0,180   # also the rear crop: matches driving back

Settings come from the defaults, then ``--config`` (the ``build`` and ``bag`` sections of
config/map_builder.yaml's ``map_builder_node: ros__parameters:``), then the flags given.
The map is written atomically at the end; an interrupted build leaves the previous map as
it was and keeps its embedded entries in ``<out>.resume.npz`` for ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.cli.source_flags import add_source_arguments, source_spec
from liploc_ros.config import from_dict, load_yaml, to_dict
from liploc_ros.errors import ConfigError

log = logging.getLogger(__name__)

#: flag -> MapBuildConfig field
_BUILD_FLAGS = {
    "keyframe_distance": "keyframe_distance",
    "batch_size": "batch_size",
    "device": "device",
    "precision": "precision",
    "backend": "backend",
    "dtype": "dtype",
    "index": "index",
    "workers": "workers",
    "frame_id": "frame_id",
}
#: flag -> BagReaderConfig field
_BAG_FLAGS = ("points_topic", "pose_topic", "pose_source", "map_frame", "lidar_frame")
_NODE = "map_builder_node"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from liploc_ros.mapdb.indexes.registry import choices_text as index_choices_text

    add_source_arguments(parser, "source (exactly one)", traversal_flags=True)

    parser.add_argument("--model", type=Path, required=True,
                        help="liploc .safetensors model or authors' .pth checkpoint")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="map file to write")
    parser.add_argument("--config", type=Path, help="YAML (config/map_builder.yaml format)")
    parser.add_argument("--sensor", help="LiDAR preset replacing the model's sensor geometry")
    parser.add_argument("--normalize", action="store_true", default=None,
                        help="an authors' .pth is their L2-normalised (Norm) variant")  # fmt: skip

    build = parser.add_argument_group("build settings (override --config)")
    build.add_argument("--keyframe-distance", type=float, help="m between kept scans (1.0)")
    build.add_argument("--batch-size", type=int, help="scans encoded together (32)")
    add_encoder_arguments(build, defaults=False)
    build.add_argument("--dtype", choices=("float32", "float16"), help="stored embeddings")
    build.add_argument("--index", help=f"{index_choices_text()} (auto)")
    build.add_argument("--workers", type=int, help="preprocessing threads (2); 0: no overlap")
    build.add_argument("--frame-id", help="frame of the map's poses (map)")
    build.add_argument("--headings", metavar="DEG,DEG|N",
                       help="crop headings, one map entry per keyframe and heading: degrees "
                       "CCW from the LiDAR's x axis ('0,180') or a count of evenly spaced "
                       "ones ('4': 0,90,180,270); default 0, the forward crop only")  # fmt: skip
    build.add_argument("--threads", type=int, help="torch CPU threads (torch's default)")

    bag = parser.add_argument_group("bag reading (override --config)")
    bag.add_argument("--points-topic", help="PointCloud2 topic")
    bag.add_argument("--pose-topic", help="Odometry / PoseStamped topic for the poses")
    bag.add_argument("--pose-source", choices=("auto", "tf", "topic", "none"),
                     help="poses from the tf tree or a topic (auto)")  # fmt: skip
    bag.add_argument("--map-frame", help="tf frame of the map (the tf tree's root)")
    bag.add_argument("--lidar-frame", help="tf frame of the LiDAR (the clouds' frame_id)")

    run_group = parser.add_argument_group("run")
    run_group.add_argument("--resume", action="store_true",
                           help="continue an interrupted build from OUT.resume.npz")  # fmt: skip
    run_group.add_argument("--no-checkpoint", action="store_true",
                           help="no OUT.resume.npz (an interrupt loses the work)")  # fmt: skip
    run_group.add_argument("--checkpoint-every", type=float, default=60.0, metavar="S",
                           help="seconds between checkpoints (60)")  # fmt: skip
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``build`` and ``bag`` sections of a map builder YAML, both validated.

    In the ROS 2 layout (``map_builder_node: ros__parameters: ...``) the node's other keys
    are left to the node; in a plain file (sections at the top) any other key is an error.
    """
    from liploc_ros.datasets.rosbag_reader import BagReaderConfig
    from liploc_ros.mapping import MapBuildConfig

    data = load_yaml(path)
    if _NODE in data:
        node = data[_NODE]
        params = node.get("ros__parameters") if isinstance(node, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: {_NODE} has no ros__parameters mapping")
        where = f"{_NODE}.ros__parameters"
    else:
        params, where = data, ""
        unknown = sorted(set(params) - {"build", "bag"})
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; expected the sections "
                f"build and bag, or the ROS 2 layout {_NODE}: ros__parameters: {{...}}"
            )
    sections: list[dict[str, Any]] = []
    for name, cls in (("build", MapBuildConfig), ("bag", BagReaderConfig)):
        section = params.get(name)
        if section is None:
            sections.append({})
            continue
        label = f"{where}.{name}" if where else name
        try:
            validated = to_dict(from_dict(cls, section, label))
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
        # only the keys the file sets, so that the flags and the defaults fill the rest
        sections.append({k: v for k, v in validated.items() if k in section})
    return sections[0], sections[1]


def _build_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The MapBuildConfig fields the flags set (they override --config)."""
    from liploc_ros.mapping.headings import parse_headings

    values = {key: getattr(args, flag) for flag, key in _BUILD_FLAGS.items()}
    values = {key: value for key, value in values.items() if value is not None}
    if args.headings is not None:
        try:
            values["headings"] = parse_headings(args.headings)
        except ConfigError as err:
            raise ConfigError(f"--{err}") from err  # its messages start with "headings"
    return values


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.registry import open_source, parse_spec
    from liploc_ros.mapping import MapBuildConfig, build_map, checkpoint_path_for
    from liploc_ros.model.model_file import load_embedder

    spec = source_spec(args)
    build_values, bag_values = read_config_file(args.config) if args.config else ({}, {})
    config = from_dict(MapBuildConfig, {**build_values, **_build_flags(args)})
    for flag in _BAG_FLAGS:
        if getattr(args, flag) is not None:
            bag_values[flag] = getattr(args, flag)
    is_bag = parse_spec(spec)[0] == "bag"
    if bag_values and not is_bag:
        log.info("bag options ignored: the source is not a bag")
    out = _check_out_and_threads(args)

    embedder = load_embedder(
        args.model, device=config.device, precision=config.precision,
        batch_size=config.batch_size, backend=config.backend, normalize=args.normalize,
        sensor=args.sensor,
    )  # fmt: skip
    source = open_source(spec, **(bag_values if is_bag else {}))
    print(_banner(source.name, embedder, config))
    checkpoint = None if args.no_checkpoint else checkpoint_path_for(out)
    if checkpoint is not None and checkpoint.exists() and not args.resume:
        log.warning("%s exists from an interrupted build; starting over (--resume continues it)",
                    checkpoint)  # fmt: skip
    database, summary = build_map(
        source,
        embedder,
        config,
        progress=not args.no_progress,
        checkpoint=checkpoint,
        checkpoint_interval=args.checkpoint_every,
        resume=args.resume,
    )
    _calibrate(database, spec, bag_values if is_bag else {}, embedder, config, args)
    path = database.save(out, index=config.index, progress=not args.no_progress)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    for line in summary.lines():
        print(line)
    size_mb = path.stat().st_size / 1e6
    print(f"map             {path} ({len(database)} entries, {size_mb:.2f} MB)")
    return 0


def _check_out_and_threads(args: argparse.Namespace) -> Path:
    """``--out`` (a file in an existing folder), and ``--threads`` applied."""
    out: Path = args.out.expanduser()
    if not out.parent.is_dir():
        raise ConfigError(f"--out: folder {out.parent} does not exist")
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; give the map file's path")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    return out


def _banner(name: str, embedder: Any, config: Any) -> str:
    loaded = embedder.loaded
    return (
        f"building a map of {name} with {loaded.model_config.name} "
        f"({loaded.fingerprint}, LiDAR {loaded.preprocess.lidar.sensor}, "
        f"{loaded.preprocess.lidar_image_size} px) with {embedder.describe()}, "
        f"keyframes every {config.keyframe_distance:g} m, crops facing "
        f"{', '.join(f'{h:g}' for h in config.headings)} deg"
    )


def _calibrate(database: Any, spec: str, bag_values: dict, embedder: Any, config: Any,
               args: argparse.Namespace) -> None:  # fmt: skip
    """The map's score calibration from its own drive's camera frames, where it has them
    (stored in ``database``; printed either way: a map without one is a warning)."""
    from tqdm import tqdm

    from liploc_ros.datasets.registry import open_source
    from liploc_ros.mapping.calibration_drive import UNCALIBRATED, calibrate_map

    if config.calibration_frames == 0:
        print(f"calibration     none (calibration_frames 0): {UNCALIBRATED}")
        return

    source = open_source(spec, **bag_values)
    with tqdm(total=config.calibration_frames, unit=" frames", desc="calibrating",
              disable=args.no_progress, dynamic_ncols=True) as bar:  # fmt: skip
        calibration, why_not = calibrate_map(
            database, source, embedder, same_drive=True, max_frames=config.calibration_frames,
            progress=lambda n: bar.update(n - bar.n),
        )  # fmt: skip
    if calibration is None:
        print(f"WARNING: {why_not}", file=sys.stderr)
        return
    for line in calibration.describe():
        print(line)
