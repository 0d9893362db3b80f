"""``liploc localize``: the camera frames of a drive, localized in a map, with the figures.

    liploc localize --map town.lmap --model tiny.safetensors --synthetic 0:1:300 --out run/
    liploc localize --map 08.lmap --model liploc_vit.pth --kitti /data/kitti --sequence 08 ...
    liploc localize --map run1.lmap --model M --bag run2/ --image-topic /camera/image_raw ...

Writes into ``--out``: poses_tum.txt, poses_kitti.txt (+ poses_kitti_frames.txt: the frame
of each line; no-fix frames are skipped), ground_truth_tum.txt, frames.csv, summary.json
(Recall@1/5/10 at 20 m, fix rate, median error, latency) and route.png (see
:mod:`liploc_ros.localization.outputs`).

Frames are encoded in batches (``--batch-size``) for speed; the per-frame times in
frames.csv are then the batch's divided by its size. The true single-frame latency is
measured afterwards on ``--latency-samples`` frames run one at a time, as the node runs
them, and reported in summary.json (``single_frame_latency_ms``).

Settings: the defaults, then the ``localizer`` section of ``--config`` (plain, or under
``localizer_node: ros__parameters:``), then the flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.cli.localize_config import localizer_config, sequence_config
from liploc_ros.cli.source_flags import add_source_arguments, source_spec
from liploc_ros.config import to_dict
from liploc_ros.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

_BAG_FLAGS = ("image_topic", "pose_topic", "pose_source", "map_frame", "anchor")
#: liploc_ros.localization.factory.MODES, spelled out: that import would load torch for --help
_MODES = ("sequence", "single")


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
    parser.add_argument("--mode", choices=_MODES, default="sequence",
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


def _frames(source: Any, stride: int, limit: int | None) -> Iterator[Any]:
    """Every ``stride``-th frame with its image; a random-access source reads only those."""
    from liploc_ros.datasets.base import IndexedSource

    if isinstance(source, IndexedSource):
        frames = (source.frame(i, image=True, points=False) for i in range(0, len(source), stride))
    else:
        frames = (
            f
            for position, f in enumerate(source.iter_frames(image=True, points=False))
            if position % stride == 0
        )
    for count, frame in enumerate(frames, start=1):
        if frame.image is None:
            raise DatasetError(f"{source.name}: frame {frame.index} has no camera image")
        yield frame
        if limit is not None and count >= limit:
            return


def _truth(pose: np.ndarray | None) -> np.ndarray | None:
    if pose is None:
        return None
    pose = np.asarray(pose, np.float64)
    return pose if np.isfinite(pose).all() else None


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


def run(args: argparse.Namespace) -> int:  # noqa: PLR0912, PLR0915
    import torch
    from tqdm import tqdm

    from liploc_ros.datasets.base import IndexedSource
    from liploc_ros.datasets.registry import open_source, parse_spec
    from liploc_ros.localization.calibration import calibration_summary
    from liploc_ros.localization.evaluation import (
        RECALL_KS,
        FrameRecord,
        latency_stats,
        summarize,
        truth_positions,
    )
    from liploc_ros.localization.factory import frame_localizer, open_localizer
    from liploc_ros.localization.frame_check import check_ground_truth_frame
    from liploc_ros.localization.outputs import write_frames_csv, write_summary, write_trajectories
    from liploc_ros.localization.stream_eval import sequence_figures
    from liploc_ros.localization.track_metrics import track_summary
    from liploc_ros.localization.tracking import TrackingLocalizer
    from liploc_ros.mapping.headings import format_headings

    spec = source_spec(args)
    config = localizer_config(args)
    _check_run_args(args)
    bag_options = {f: getattr(args, f) for f in _BAG_FLAGS if getattr(args, f) is not None}
    is_bag = parse_spec(spec)[0] == "bag"
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    opened = open_localizer(
        args.model, args.map.expanduser(), mode=args.mode, config=config,
        sequence=sequence_config(args) if args.mode == "sequence" else None,
        device=args.device, precision=args.precision, backend=args.backend,
        batch_size=args.batch_size, normalize=args.normalize,
    )  # fmt: skip
    localizer = frame_localizer(opened)
    tracker = opened if isinstance(opened, TrackingLocalizer) else None
    database, embedder, loaded = localizer.database, localizer.embedder, localizer.embedder.loaded
    _check_headings(args, database)
    source = open_source(spec, **(bag_options if is_bag else {}))
    out: Path = args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"localizing {source.name} in {args.map} ({len(database)} entries, crops at "
        f"{format_headings(database.headings)} deg, {database.index_kind} index) with "
        f"{loaded.model_config.name} ({loaded.fingerprint}) with {embedder.describe()}, "
        f"batches of {args.batch_size}"
    )
    localizer.warm_up()
    if localizer.estimator.calibration_warning:
        print(f"WARNING: {localizer.estimator.calibration_warning}", file=sys.stderr)

    # Recall@K counts K distinct scans: every crop of K keyframes may come first
    depth = max(RECALL_KS) * max(1, database.entries_per_keyframe)
    records: list[FrameRecord] = []
    samples: list[tuple[np.ndarray, float]] = []
    pending: list[Any] = []

    odometry_kinds: set[str] = set()

    def flush() -> None:
        images, stamps = [f.image for f in pending], [f.stamp for f in pending]
        if tracker is None:
            estimates = localizer.localize_batch(images, stamps, k=depth)
        else:
            odometry = [f.odometry for f in pending]
            odometry_kinds.update(
                str(f.meta.get("odometry", "recorded")) if f.odometry is not None else "none"
                for f in pending
            )
            estimates = tracker.localize_batch(images, stamps, odometry, k=depth)
        for frame, est in zip(pending, estimates, strict=True):
            records.append(FrameRecord(frame.index, est, _truth(frame.pose)))
        pending.clear()

    total = None
    if isinstance(source, IndexedSource):
        total = -(-len(source) // args.stride)
        total = min(total, args.max_frames) if args.max_frames else total
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit=" frames", desc="localizing", disable=args.no_progress,
               dynamic_ncols=True)  # fmt: skip
    try:
        for frame in _frames(source, args.stride, args.max_frames):
            pending.append(frame)
            if len(samples) < args.latency_samples:
                samples.append((frame.image, frame.stamp))
            if len(pending) == args.batch_size:
                flush()
            bar.update(1)
            if records:
                bar.set_postfix(fixes=sum(r.estimate.ok for r in records), refresh=False)
        if pending:
            flush()
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if not records:
        raise DatasetError(f"{source.name}: no frame with a camera image to localize")

    single = [localizer.localize(image, stamp) for image, stamp in samples]

    truth = np.stack(
        [r.truth if r.truth is not None else np.full((4, 4), np.nan) for r in records]
    )
    top1 = _top1_errors(records, database)
    summary: dict[str, Any] = {
        "mode": args.mode,
        "odometry": ",".join(sorted(odometry_kinds)) if tracker is not None else None,
        "source": source.name,
        "map": str(args.map),
        "map_entries": len(database),
        "map_index": database.index_kind,
        "model": loaded.model_config.name,
        "model_fingerprint": loaded.fingerprint,
        "device": str(embedder.device),
        "precision": embedder.precision,
        "backend": embedder.backend,
        "batch_size": args.batch_size,
        "stride": args.stride,
        "localizer": to_dict(config),
        "seconds": seconds,
        "frames_per_second": len(records) / seconds if seconds > 0 else None,
        **summarize(records, database, threshold_m=args.threshold, ks=RECALL_KS),
        **track_summary(
            [r.estimate for r in records], truth, threshold_m=args.threshold, top1_error_m=top1
        ),
        "latency_note": (
            "latency_ms: per frame, the batch's stage times divided by its size"
            if args.batch_size > 1
            else "latency_ms: per frame, one frame at a time"
        ),
        "sequence": to_dict(tracker.filter.config) if tracker is not None else None,
        "single_frame_latency_ms": {
            "samples": len(single),
            **(latency_stats(single) if single else {}),
        },
    }
    summary["calibration"] = localizer.estimator.calibration_warning or calibration_summary(
        database
    )
    curve = None
    if tracker is not None:
        figures = sequence_figures([r.estimate for r in records], truth, localizer.estimator,
                                   tracker.filter.config, args.threshold)  # fmt: skip
        curve = figures.pop("precision_curve")
        summary.update(figures)
    frame = check_ground_truth_frame(truth_positions(records), database.positions, args.threshold)
    if frame.queries:
        summary["ground_truth_frame"] = frame.as_dict()
    if tracker is not None and odometry_kinds == {"none"}:
        summary["odometry_note"] = (
            "no odometry: the filter moved its particles by a bounded random walk, which "
            "tracks worse than with odometry"
        )
    write_trajectories(out, records)
    write_frames_csv(out / "frames.csv", records, database)
    write_summary(out / "summary.json", summary)
    if not args.no_plot:
        from liploc_ros.localization.plot import save_error_figure, save_route_figure

        save_error_figure(out / "error_vs_distance.png", records, threshold_m=args.threshold,
                          title=f"{source.name}: {args.mode} mode")  # fmt: skip
        save_route_figure(
            out / "route.png", records, database, threshold_m=args.threshold,
            title=f"{source.name} in {args.map.name}",
        )  # fmt: skip
        if curve is not None:
            from liploc_ros.localization.plot import save_precision_curve

            save_precision_curve(out / "precision_curve.png", {source.name: curve},
                                 title=f"{source.name}: precision vs fix ratio")  # fmt: skip

    for line in _report_lines(summary):
        print(line)
    if frame.queries:
        print(f"ground truth    {frame.message()}")
    print(f"outputs         {out}")
    if frame.suspect:  # loudly, on stderr too: a recall of 0 must not go unexplained
        print(f"liploc localize: {frame.message()}", file=sys.stderr)
    return 0


def _top1_errors(records: list[Any], database: Any) -> np.ndarray:
    """Ground distance (m) from each frame's truth to its top-1 entry (NaN: no truth)."""
    from liploc_ros.localization.evaluation import ground_distances, retrieved_positions

    from_truth = np.full((len(records), 3), np.nan)
    for i, r in enumerate(records):
        if r.truth is not None:
            from_truth[i] = r.truth[:3, 3]
    found = retrieved_positions(records, database)
    if found.shape[1] == 0:
        return np.full(len(records), np.nan)
    return ground_distances(from_truth, found)[:, 0]


def _fmt(value: Any, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _report_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"frames          {summary['frames']} ({_fmt(summary['frames_per_second'], '.1f')} "
        "frames/s)",
        f"fixes           {summary['fixes']} ({_fmt(summary['fix_rate'], '.1%')})"
        + (
            " no fix: " + ", ".join(f"{k} {v}" for k, v in summary["no_fix_reasons"].items())
            if summary["no_fix_reasons"]
            else ""
        ),
    ]
    if summary.get("recall"):
        recall = ", ".join(f"R{k} {_fmt(v, '.3f')}" for k, v in summary["recall"].items())
        lines += [
            f"recall          {recall} (within {summary['threshold_m']:g} m, ground plane)",
            f"median error    {_fmt(summary['median_error_m'], '.2f')} m over fixes, "
            f"fix precision {_fmt(summary['fix_precision'], '.3f')}",
        ]
    if summary.get("fix_precision_20m") is not None or summary.get("mode") == "sequence":
        lines.append(
            f"{summary['mode']:<15} fix ratio {_fmt(summary['fix_ratio'])}, precision "
            f"{_fmt(summary['fix_precision_20m'])} (20 m) {_fmt(summary['fix_precision_5m'])} "
            f"(5 m), median {_fmt(summary['median_error_m'], '.2f')} m, p95 "
            f"{_fmt(summary['p95_error_m'], '.1f')} m, yaw "
            f"{_fmt(summary['median_yaw_error_deg'], '.1f')}"
            f" deg, first fix after {_fmt(summary['first_fix_distance_m'], '.1f')} m"
            + (f" (odometry: {summary['odometry']})" if summary.get("odometry") else "")
        )
    total = summary["latency_ms"]["total"]
    single = summary["single_frame_latency_ms"].get("total", {})
    lines.append(
        f"latency         {_fmt(total['p50'], '.1f')} ms p50, {_fmt(total['p99'], '.1f')} ms p99"
        f" per frame (batched); one frame at a time: {_fmt(single.get('p50'), '.1f')} ms p50, "
        f"{_fmt(single.get('p99'), '.1f')} ms p99"
    )
    return lines
