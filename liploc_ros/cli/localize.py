"""``liploc localize``: the camera frames of a drive, localized in a map, with the figures.

    liploc localize --map town.lmap --model tiny.safetensors --synthetic 0:1:300 --out run/
    liploc localize --map 08.lmap --model liploc_vit.pth --kitti /data/kitti --sequence 08 ...
    liploc localize --map run1.lmap --model M --bag run2/ --image-topic /camera/image_raw ...

Writes into ``--out``: poses_tum.txt, poses_kitti.txt (+ poses_kitti_frames.txt: the frame
of each line; no-fix frames are skipped), ground_truth_tum.txt, frames.csv, summary.json
(Recall@1/5/10 at 20 m, fix rate, median error, latency) and route.png (see
:mod:`liploc_ros.evaluation.outputs`).

Frames are encoded in batches (``--batch-size``) for speed; the per-frame times in
frames.csv are then the batch's divided by its size. The true single-frame latency is
measured afterwards on ``--latency-samples`` frames run one at a time, as the node runs
them, and reported in summary.json (``single_frame_latency_ms``).

Settings: the defaults, then the ``localizer`` section of ``--config`` (plain, or under
``localizer_node: ros__parameters:``), then the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.cli.localize_config import localizer_config, sequence_config
from liploc_ros.cli.source_flags import add_source_arguments, source_spec
from liploc_ros.errors import ConfigError
from liploc_ros.localization.mode_registry import DEFAULT_MODE, mode_names

log = logging.getLogger(__name__)

_BAG_FLAGS = ("image_topic", "pose_topic", "pose_source", "map_frame", "anchor")


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, "frames to localize (exactly one source)")

    parser.add_argument("--map", type=Path, required=True, help="map database file")
    parser.add_argument("--headings", metavar="DEGREES|COUNT",
                        help="crop headings the map must hold, as build-map takes them (0,180: "
                        "forward and rear crops); refused if the map was built without them "
                        "(default: whatever it holds)")  # fmt: skip
    parser.add_argument("--model", type=Path, required=True,
                        help="the map's model (.safetensors, or an authors' .pth)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--normalize", action="store_true", default=None,
                        help="an authors' .pth is their L2-normalised (Norm) variant")  # fmt: skip
    parser.add_argument("--config", type=Path,
                        help="YAML with `localizer` and `sequence` sections")  # fmt: skip
    parser.add_argument("--mode", choices=mode_names(), default=DEFAULT_MODE,
                        help="sequence: track with odometry and retrieval (a particle filter, "
                        "default); single: every frame alone")  # fmt: skip

    loc = parser.add_argument_group("localizer settings (override --config)")
    loc.add_argument("--top-k", type=int, help="matches used for the estimate (5)")
    loc.add_argument("--max-spread-m", type=float, help="no fix when the matches spread more (20)")
    loc.add_argument("--target-precision", type=float, metavar="P",
                     help="fix only at this calibrated probability of being right, in either "
                     "mode (0.99)")  # fmt: skip

    ev = parser.add_argument_group("evaluation")
    ev.add_argument("--threshold", type=float, default=20.0, help="success distance, m (20)")

    run_group = parser.add_argument_group("run")
    add_encoder_arguments(run_group)
    run_group.add_argument(
        "--batch-size", type=int, default=16,
        help="frames encoded together (16); 1: true per-frame latency",
    )  # fmt: skip
    run_group.add_argument("--threads", type=int, help="torch CPU threads (torch's default)")
    run_group.add_argument("--stride", type=int, default=1, help="localize every Nth frame (1)")
    run_group.add_argument("--max-frames", type=int, help="stop after this many frames")
    run_group.add_argument(
        "--latency-samples", type=int, default=20,
        help="frames re-run one at a time for the latency figures (20)",
    )  # fmt: skip
    run_group.add_argument("--no-plot", action="store_true", help="no route.png")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")

    bag = parser.add_argument_group("bag reading")
    bag.add_argument("--image-topic", help="Image / CompressedImage topic")
    bag.add_argument("--pose-topic", help="ground truth Odometry / PoseStamped topic")
    bag.add_argument("--pose-source", choices=("auto", "tf", "topic", "none"),
                     help="ground truth from the tf tree or a topic (auto)")  # fmt: skip
    bag.add_argument("--map-frame", help="tf frame of the ground truth (the tf tree's root)")
    bag.add_argument("--anchor", choices=("auto", "lidar", "camera"), default="camera",
                     help="one frame per image (camera, default) or per scan (lidar)")  # fmt: skip


def _check_run_args(args: argparse.Namespace) -> None:
    for name in ("batch_size", "stride"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    if args.latency_samples < 0:
        raise ConfigError("--latency-samples must be >= 0")
    if not args.threshold > 0:
        raise ConfigError("--threshold must be positive")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder")


def _check_headings(args: argparse.Namespace, database: Any) -> None:
    """``--headings``: the map must hold every crop heading asked for."""
    if args.headings is None:
        return
    from liploc_ros.mapping.headings import format_headings, parse_headings

    wanted = parse_headings(args.headings)
    missing = sorted(set(wanted) - set(database.headings))
    if missing:
        raise ConfigError(
            f"--headings {args.headings}: map {args.map} holds crops at "
            f"{format_headings(database.headings)} deg, not at "
            f"{format_headings(tuple(missing))} deg; rebuild it with "
            f"`liploc build-map ... --headings {args.headings}`"
        )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.datasets.registry import open_source, parse_spec
    from liploc_ros.evaluation.report import run_lines
    from liploc_ros.evaluation.run_summary import summarize_run, write_run
    from liploc_ros.evaluation.summary import RECALL_KS
    from liploc_ros.localization.factory import open_localizer
    from liploc_ros.localization.run import localize_source

    spec = source_spec(args)
    config = localizer_config(args)
    _check_run_args(args)
    bag_options = {f: getattr(args, f) for f in _BAG_FLAGS if getattr(args, f) is not None}
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    localizer = open_localizer(
        args.model, args.map.expanduser(), mode=args.mode, config=config,
        sequence=sequence_config(args), device=args.device, precision=args.precision,
        backend=args.backend, batch_size=args.batch_size, normalize=args.normalize,
    )  # fmt: skip
    database = localizer.database
    _check_headings(args, database)
    source = open_source(spec, **(bag_options if parse_spec(spec)[0] == "bag" else {}))
    out: Path = args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    print(_banner(args, source.name, localizer))
    localizer.warm_up()
    if localizer.estimator.calibration_warning:
        print(f"WARNING: {localizer.estimator.calibration_warning}", file=sys.stderr)
    # Recall@K counts K distinct scans: every crop of K keyframes may come first
    depth = max(RECALL_KS) * max(1, database.entries_per_keyframe)
    with _progress(source, args) as on_frame:
        stream = localize_source(
            localizer, source, batch_size=args.batch_size, stride=args.stride,
            max_frames=args.max_frames, k=depth, latency_samples=args.latency_samples,
            on_frame=on_frame,
        )  # fmt: skip
    about = {"source": source.name, "map": str(args.map), "batch_size": args.batch_size,
             "stride": args.stride}  # fmt: skip
    report = summarize_run(localizer, stream, threshold_m=args.threshold, about=about)
    write_run(out, localizer, stream, report, plots=not args.no_plot, title=source.name,
              map_name=args.map.name)  # fmt: skip
    for line in run_lines(report.summary):
        print(line)
    if report.frame.queries:
        print(f"ground truth    {report.frame.message()}")
    print(f"outputs         {out}")
    if report.frame.suspect:  # loudly, on stderr too: a recall of 0 must not go unexplained
        print(f"liploc localize: {report.frame.message()}", file=sys.stderr)
    return 0


def _banner(args: argparse.Namespace, name: str, localizer: Any) -> str:
    from liploc_ros.mapping.headings import format_headings

    database, embedder = localizer.database, localizer.embedder
    loaded = embedder.loaded
    return (
        f"localizing {name} in {args.map} ({len(database)} entries, crops at "
        f"{format_headings(database.headings)} deg, {database.index_kind} index) with "
        f"{loaded.model_config.name} ({loaded.fingerprint}) with {embedder.describe()}, "
        f"batches of {args.batch_size}, {localizer.mode.name} mode"
    )


@contextlib.contextmanager
def _progress(source: Any, args: argparse.Namespace) -> Iterator[Callable[[Any], None]]:
    """A progress bar over the frames to localize, as an ``on_frame`` callback."""
    from tqdm import tqdm

    from liploc_ros.datasets.base import IndexedSource

    total = None
    if isinstance(source, IndexedSource):
        total = -(-len(source) // args.stride)
        total = min(total, args.max_frames) if args.max_frames else total
    bar = tqdm(total=total, unit=" frames", desc="localizing", disable=args.no_progress,
               dynamic_ncols=True)  # fmt: skip

    def on_frame(run: Any) -> None:
        bar.update(1)
        if run.records:
            bar.set_postfix(fixes=sum(r.estimate.ok for r in run.records), refresh=False)

    try:
        yield on_frame
    finally:
        bar.close()
