"""``liploc demo``: the whole system end to end, on a synthetic town, on this machine.

1. A synthetic town (seed 100 by default: not one the demo model was trained on) is driven
   twice and written as ROS 2 bags into ``--out``: the mapping traversal and the query
   traversal (another time of day, another lane position).
2. The map is built from the mapping bag's LiDAR scans (:func:`liploc_ros.mapping.build_map`).
3. ``localizer_node`` starts as a child process on a ROS domain of its own, in sequence
   mode, and the query bag's camera topic and its drifting odometry (/odom) are played
   into it in real time (:mod:`liploc_ros.ros.bag_player`, with /clock and use_sim_time);
   the node drops frames when it is slower than the camera.
4. The published poses are matched by stamp to the query bag's ground truth: Recall@1 at
   20 m, latency percentiles and chance level are printed, and the node's poses beside the
   single-frame estimates of the same frames (recomputed here from the bag's images with
   the node's ``localizer`` settings): fix ratio, precision, median error, wrong fixes,
   distance to the first fix. The route PNG is written (:mod:`liploc_ros.evaluation.route_figure`).

The model is ``--model``, else ``models/liploc_demo.safetensors`` when it is installed,
else a randomly initialised liploc-tiny, reported as UNTRAINED (its recall is then near
chance: the demo then shows the plumbing, not the method).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.errors import ConfigError
from liploc_ros.io_utils import write_text_atomic

if TYPE_CHECKING:
    import numpy as np

    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.model import Embedder

DEMO_MODEL = "liploc_demo.safetensors"
DEFAULT_SEED = 100
IMAGE_TOPIC = "/kitti/camera_color_left/image_raw"
ODOM_TOPIC = "/odom"  # the bags' drifting odometry (the truth is on /ground_truth/odom)
TIME_OFFSET = 1000.0  # s added to the bags' stamps: ROS time 0 means "unset"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"synthetic town seed ({DEFAULT_SEED}; not a training town)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=300,
        help="frames per traversal, 10 Hz, about 1 m apart (300)",
    )
    parser.add_argument("--model", type=Path, default=None, help="a liploc model file")
    add_encoder_arguments(parser)
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="playback speed factor of the query bag (1.0: real time)",
    )
    parser.add_argument(
        "--keyframe-distance", type=float, default=1.0, help="metres between map entries (1.0)"
    )
    parser.add_argument(
        "--image-encoding",
        choices=("jpeg", "rgb8"),
        default="jpeg",
        help="camera messages in the bags: CompressedImage (jpeg) or Image",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads of the localizer node (0: all cores)"
    )
    parser.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS_DOMAIN_ID for the demo's graph (default: from the pid)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    domain = _check_args(args)
    out: Path = args.out.expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    clock = time.perf_counter()

    model_path, label = _model_file(args.model, out)
    short = ("UNTRAINED " if label.startswith("UNTRAINED") else "") + model_path.name
    print(f"model: {label}")
    bags = _render(args, out, progress)
    map_path, database, embedder = _build_map(model_path, bags["map"], args, out, progress)

    from liploc_ros.evaluation.demo_figures import evaluate_run, route_points
    from liploc_ros.evaluation.route_figure import save_route_figure
    from liploc_ros.ros.demo_report import read_ground_truth

    t0 = time.perf_counter()
    session = _run_node(args, model_path, map_path, bags["query"], out, domain)
    live_s = time.perf_counter() - t0
    truth = read_ground_truth(bags["query"])
    figures = evaluate_run(
        session.matches, session.poses, truth, database.positions,
        frames_played=len(session.played_stamps), frames_localized=session.frames_localized,
        played_stamps=session.played_stamps,
    )  # fmt: skip
    png = save_route_figure(
        out / "route.png",
        database.positions[:, :2],
        *route_points(truth, session.played_stamps, session.matches, session.poses),
        title=f"town {args.seed}: query traversal localized by localizer_node ({short})",
    )
    columns = _compare_modes(bags["query"], session, truth, figures, embedder, database)
    summary = _summary(args, label, database, session, figures, columns)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _print_figures(figures, session, live_s, columns)
    print(f"figure: {png}")
    print(f"summary: {out / 'summary.json'}")
    print(f"done in {time.perf_counter() - clock:.1f} s")
    return 0


def _check_args(args: argparse.Namespace) -> int:
    """The checked arguments' ROS domain id."""
    if args.frames < 2:
        raise ConfigError("--frames must be at least 2")
    if not args.rate > 0:
        raise ConfigError("--rate must be positive")
    domain = args.domain_id if args.domain_id is not None else 211 + os.getpid() % 20
    if not 0 <= domain <= 232:
        raise ConfigError(f"--domain-id must be in 0..232, got {domain}")
    return int(domain)


def _run_node(
    args: argparse.Namespace, model_path: Path, map_path: Path, bag: Path, out: Path, domain: int
) -> Any:
    """localizer_node (sequence mode, the shipped config) fed with the query bag at
    ``--rate``; the session's figures."""
    from liploc_ros.paths import config_file
    from liploc_ros.ros.demo_session import LocalizerProcess, play_into_localizer, ros_environment

    topic = IMAGE_TOPIC + ("/compressed" if args.image_encoding == "jpeg" else "")
    params: dict[str, Any] = {
        "model": str(model_path),
        "map_path": str(map_path),
        "device": args.device,
        "precision": args.precision,
        "backend": args.backend,
        "threads": args.threads,
        "image_topics": [topic],
        "use_sim_time": True,
        "publish_markers": True,  # the best match of every frame, fix or not: Recall@1
        "mode": "sequence",
        "odometry_source": "topic",  # the bag's /odom (tf would need tf2_ros and /tf played)
        "odom_topic": ODOM_TOPIC,
    }
    print(f"localize: localizer_node on ROS domain {domain}, log {out / 'localizer_node.log'}")
    env = ros_environment(domain)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process's own rclpy joins the same domain
    try:
        with LocalizerProcess(
            params, out / "localizer_node.log", env, params_file=config_file("localizer.yaml")
        ) as node:
            return play_into_localizer(bag, topic, node, rate=args.rate, odometry_topic=ODOM_TOPIC)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _summary(args: argparse.Namespace, label: str, database: Any, session: Any, figures: Any,
             columns: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """summary.json of the demo."""
    return {
        "model": label,
        "seed": args.seed,
        "frames_per_traversal": args.frames,
        "rate": args.rate,
        "map_entries": len(database),
        "node_diagnostics": session.diagnostics,
        "node_rss_mb": {
            "start": _finite(session.rss_start_mb),
            "end": _finite(session.rss_end_mb),
        },
        "node_processing_ms": session.processing_ms,
        **figures.as_dict(),
        "mode": "sequence",
        "modes": {name: column.as_dict() for name, column in columns.items()},
    }


def _model_file(path: Path | None, out: Path) -> tuple[Path, str]:
    """The given model, else the shipped demo model, else an untrained small one (saved to
    ``out``: the node process loads it from a file)."""
    from liploc_ros.paths import models_dir

    if path is not None:
        path = path.expanduser()
        if not path.is_file():
            raise ConfigError(f"--model {path} does not exist")
        return path, str(path)
    shipped = models_dir() / DEMO_MODEL
    if shipped.is_file():
        return shipped, f"{shipped} (trained on synthetic towns)"
    import torch

    from liploc_ros.model import create_model, model_preset, save_model
    from liploc_ros.preprocess import CameraConfig, PreprocessConfig

    target = out / "untrained_liploc_tiny.safetensors"
    if not target.is_file():
        torch.manual_seed(0)
        size = 96
        pre = PreprocessConfig(camera=CameraConfig(image_size=size), lidar_image_size=size)
        save_model(target, create_model(model_preset("liploc-tiny"), pre))
    return target, (
        f"UNTRAINED liploc-tiny ({target.name}, random weights: expect chance-level recall; "
        f"{DEMO_MODEL} is not in {shipped.parent})"
    )


def _render(args: argparse.Namespace, out: Path, progress: bool) -> dict[str, Path]:
    """The two traversals as ROS 2 bags; reused when an earlier run wrote the same ones."""
    from liploc_ros.datasets.rosbag_writer import write_bag
    from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
    from liploc_ros.datasets.synthetic.config import TownConfig

    bags = {"map": out / "bags" / "map", "query": out / "bags" / "query"}
    manifest = out / "bags" / "manifest.json"
    wanted = {
        "seed": args.seed,
        "frames": args.frames,
        "encoding": args.image_encoding,
        "time_offset": TIME_OFFSET,
        "odometry": "simulated",  # bags without /odom (older runs) are rendered again
    }
    if manifest.is_file() and all((p / "metadata.yaml").is_file() for p in bags.values()):
        try:
            if json.loads(manifest.read_text()) == wanted:
                print(f"world: town {args.seed}, bags reused from {manifest.parent}")
                return bags
        except ValueError:
            pass
    t0 = time.perf_counter()
    town = make_town(TownConfig(seed=args.seed))
    for traversal, (role, path) in enumerate(bags.items()):
        write_bag(
            SyntheticDrive(town, traversal, args.frames),
            path,
            image_encoding=args.image_encoding,
            progress=progress,
            overwrite=True,
            time_offset=TIME_OFFSET,
        )
        print(f"  {role} traversal {traversal}: {path}")
    write_text_atomic(manifest, json.dumps(wanted) + "\n")
    print(
        f"world: town {args.seed}, 2 traversals x {args.frames} frames rendered in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return bags


def _build_map(
    model: Path, bag: Path, args: argparse.Namespace, out: Path, progress: bool
) -> tuple[Path, MapDatabase, Embedder]:
    from liploc_ros.datasets.registry import open_source
    from liploc_ros.localization.calibration import calibration_summary
    from liploc_ros.mapping import MapBuildConfig, build_map
    from liploc_ros.mapping.calibration_drive import calibrate_map
    from liploc_ros.model.model_file import load_embedder

    embedder = load_embedder(
        model, device=args.device, precision=args.precision, backend=args.backend
    )
    config = MapBuildConfig(
        keyframe_distance=args.keyframe_distance, device=args.device, precision=args.precision,
        backend=args.backend,
    )  # fmt: skip
    database, summary = build_map(open_source(f"bag:{bag}"), embedder, config, progress=progress)
    # calibrated on the mapping drive's own camera frames, as build-map does
    t0 = time.perf_counter()
    calibration, why_not = calibrate_map(
        database, open_source(f"bag:{bag}"), embedder, same_drive=True,
        max_frames=config.calibration_frames,
    )  # fmt: skip
    path = database.save(out / "map.lmap")
    print(
        f"map: {len(database)} entries from {summary.scans_read} scans in "
        f"{summary.seconds:.1f} s ({summary.scans_per_second:.1f} scans/s) -> {path}"
    )
    if calibration is None:
        print(f"WARNING: {why_not}", file=sys.stderr)
    else:
        print(f"calibrated on the mapping drive in {time.perf_counter() - t0:.1f} s: "
              f"{calibration_summary(database)}")  # fmt: skip
    return path, database, embedder


def _compare_modes(bag: Path, session: Any, truth: Any, figures: Any, embedder: Any,
                   database: Any) -> dict[str, Any]:  # fmt: skip
    """The node's poses (sequence mode) and the single-frame estimates of the same frames,
    as :class:`~liploc_ros.evaluation.demo_figures.PoseFigures` columns."""
    from liploc_ros.evaluation.demo_figures import pose_figures

    t0 = time.perf_counter()
    single = _single_frame_poses(bag, {m.stamp for m in session.matches}, embedder, database)
    print(
        f"single-frame estimates of the same frames recomputed in {time.perf_counter() - t0:.1f} s"
    )
    frames, played = figures.frames_localized, session.played_stamps
    return {
        "single-frame": pose_figures(single, truth, played, frames),
        "sequence (node)": pose_figures(session.poses, truth, played, frames),
    }


def _single_frame_poses(bag: Path, stamps: set[float], embedder: Any, database: Any) -> list:
    """Each frame at ``stamps`` alone, from the bag's image, with the node's ``localizer``
    settings (config/localizer.yaml): base_link positions of the fixes."""
    from liploc_ros.cli.localize_config import read_config_file
    from liploc_ros.datasets.registry import open_source
    from liploc_ros.datasets.rosbag_writer import DEFAULT_T_BASE_LIDAR
    from liploc_ros.evaluation.demo_figures import Received, stamp_key
    from liploc_ros.geometry import invert_transform
    from liploc_ros.localization.config import LocalizerConfig
    from liploc_ros.localization.factory import open_localizer
    from liploc_ros.paths import config_file

    config = LocalizerConfig(**read_config_file(config_file("localizer.yaml")))
    localizer = open_localizer(embedder, database, mode="single", config=config)
    T_lidar_base = invert_transform(DEFAULT_T_BASE_LIDAR)
    wanted = {stamp_key(s) for s in stamps}
    frames = [f for f in open_source(f"bag:{bag}").iter_frames(points=False)
              if stamp_key(f.stamp) in wanted]  # fmt: skip
    out = []
    for i in range(0, len(frames), 32):
        batch = frames[i : i + 32]
        images = cast("list[np.ndarray]", [f.image for f in batch])  # read with image=True
        for est in localizer.localize_batch(images, [f.stamp for f in batch]):
            if est.ok:
                out.append(Received(est.stamp, (est.pose @ T_lidar_base)[:3, 3]))
    return out


def _finite(value: float) -> float | None:
    """JSON has no NaN: None instead."""
    import math

    return value if math.isfinite(value) else None


def _fmt(value: float | None, fmt: str) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def _print_figures(fig: Any, session: Any, live_s: float, columns: dict[str, Any]) -> None:
    lat, t = fig.latency_ms, f"{fig.threshold_m:g}"
    print(
        f"frames: {fig.frames_played} played, {fig.frames_localized} localized by the node "
        f"({fig.frames_played - fig.frames_localized} dropped or lost: the node takes the "
        f"newest frame), {fig.poses} poses published ({live_s:.1f} s live)"
    )
    print(
        f"Recall@1 at {t} m: {_fmt(fig.recall_at_1, '.3f')} over the localized frames "
        f"(chance {_fmt(fig.chance, '.3f')}); median top-1 error "
        f"{_fmt(fig.median_top1_error_m, '.1f')} m"
    )
    from liploc_ros.evaluation.demo_figures import side_by_side

    print(
        f"poses over the {fig.frames_localized} frames the node localized (single-frame: "
        "each frame alone; sequence: the node's filter with the bag's drifting /odom):"
    )
    for line in side_by_side(columns, fig.threshold_m):
        print(line)
    d = session.diagnostics
    print(
        f"sequence filter at the end: {d.get('state', 'n/a')}, tracked share "
        f"{d.get('tracked_share', 'n/a')}, {d.get('total_frames_without_odometry', 'n/a')} "
        f"frames without odometry ({d.get('odometry_source', 'n/a')})"
    )
    p99_ms = float(d.get("processing_p99_ms", "nan"))
    print(
        f"latency (image published -> the node's answer received): p50 "
        f"{_fmt(lat['p50'], '.0f')} ms, p90 {_fmt(lat['p90'], '.0f')} ms, p99 "
        f"{_fmt(lat['p99'], '.0f')} ms; the node's own time per frame "
        f"{_fmt(session.processing_ms, '.0f')} ms (mean), {_fmt(p99_ms, '.0f')} ms (p99)"
    )
    print(
        f"node memory (resident): {_fmt(session.rss_start_mb, '.0f')} MB when the playback "
        f"started, {_fmt(session.rss_end_mb, '.0f')} MB at its end"
    )
