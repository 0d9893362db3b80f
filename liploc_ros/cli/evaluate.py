"""``liploc eval``: Recall@K of a model on a sequence (the paper's protocol) or across two.

    liploc eval --model m.safetensors --source kitti:/data/kitti:08
    liploc eval --model m.safetensors --source kitti:/data/kitti:08 --distance authors
    liploc eval --model models/liploc_demo.safetensors \\
        --source synthetic:7:0:300 --queries synthetic:7:1:300 --out out/eval

With ``--source`` alone, the database is the LiDAR embedding of every frame of the sequence
and the queries the camera embedding of every frame of the same sequence; with
``--queries``, the map comes from ``--source`` and the queries from the other drive.
Writes results.npz, summary.json, route.png and recall_curve.png under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liploc_ros.cli.encoder_flags import add_encoder_arguments
from liploc_ros.errors import ConfigError
from liploc_ros.evaluation.report import track_line
from liploc_ros.localization.mode_registry import mode_names

if TYPE_CHECKING:
    from liploc_ros.model.liploc_file import LoadedModel
    from liploc_ros.preprocess.config import PreprocessConfig
    from liploc_ros.training.pictures import PictureSet

log = logging.getLogger(__name__)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=None,
        help="a liploc .safetensors or an authors' .pth (default: the shipped demo model)",
    )  # fmt: skip
    parser.add_argument(
        "--source", "--map", dest="source", required=True,
        help="dataset spec of the sequence (or, with --queries, of the map drive): "
        "kitti:ROOT:SEQ, kitti360:ROOT:DRIVE, bag:PATH, synthetic:SEED:TRAVERSAL:FRAMES",
    )  # fmt: skip
    parser.add_argument("--queries", default=None, help="dataset spec of the query drive")
    parser.add_argument(
        "--distance", choices=("ground", "authors"), default="ground",
        help="ground: x-y of the map frame (default); authors: the 2nd and 3rd translation "
        "components of the KITTI / KITTI-360 pose files, as the authors' code measures",
    )  # fmt: skip
    parser.add_argument("--threshold", type=float, default=20.0, help="success radius, m (20)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], help="K values")
    parser.add_argument(
        "--lidar-max-distance", type=float, default=None,
        help="drop points beyond this before projecting (the authors' KITTI-360 models: 50)",
    )  # fmt: skip
    add_encoder_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="frame-loading processes (2)")
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="keep the preprocessed inputs here (bags are always cached, in a temporary "
        "folder if not given)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="write results and figures here")
    parser.add_argument(
        "--mode", choices=mode_names(), default="single",
        help="with --queries, also localize the query drive in time order and report the "
        "published poses: single (every frame alone, default) or sequence (the particle "
        "filter with the query drive's odometry)",
    )  # fmt: skip
    parser.add_argument(
        "--headings", type=_headings, default=(0.0,), metavar="DEGREES|COUNT",
        help="crop headings of the map's entries, as build-map takes them: 0,180 (forward and "
        "rear crops) or a count of evenly spaced ones (default 0: the forward crop only)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", default=None, metavar="SOURCE",
        help="with --queries: calibrate the map on this labelled drive (another day's; the "
        "better data) instead of on the map drive's own camera frames, as build-map does",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-frames", type=int, default=600,
        help="camera frames the map's calibration is measured on at most (600)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _headings(text: str) -> tuple[float, ...]:
    from liploc_ros.mapping.headings import parse_headings

    try:
        return parse_headings(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _load(path: Path | None, max_distance: float | None) -> tuple[LoadedModel, Path]:
    from liploc_ros.errors import CheckpointError
    from liploc_ros.model.model_file import load_model_file
    from liploc_ros.paths import models_dir, resolve_shared_path

    if path is None:
        path = models_dir() / "liploc_demo.safetensors"
        if not path.is_file():
            raise CheckpointError(f"no --model given and no demo model at {path}")
    path = resolve_shared_path(path)
    loaded = load_model_file(path)  # the one sniffer decides what the file is
    if max_distance is not None:
        pre = loaded.preprocess
        lidar = dataclasses.replace(pre.lidar, distance_threshold=max_distance)
        loaded.preprocess = dataclasses.replace(pre, lidar=lidar)
    return loaded, path


def _pictures(
    spec: str,
    pre: PreprocessConfig,
    cache_dir: Path | None,
    workers: int,
    progress: bool,
    tmp: str,
    headings: Sequence[float] = (0.0,),
) -> PictureSet:
    from liploc_ros.datasets.base import IndexedSource
    from liploc_ros.datasets.registry import open_source
    from liploc_ros.training.picture_cache import cache_pictures
    from liploc_ros.training.pictures import LazyPictures
    from liploc_ros.training.sources import scan_options

    source = open_source(spec, **scan_options(spec, pre, headings))
    if cache_dir is None and isinstance(source, IndexedSource):
        return LazyPictures(source, pre, headings)
    root = cache_dir if cache_dir is not None else Path(tmp)
    return cache_pictures(
        spec, source, pre, root, headings=headings, workers=workers, progress=progress
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.model import Embedder
    from liploc_ros.training.evaluate import evaluate_pictures, save_eval_outputs

    loaded, path = _load(args.model, args.lidar_max_distance)
    embedder = Embedder(
        loaded, device=args.device, precision=args.precision, batch_size=args.batch_size,
        backend=args.backend,
    )  # fmt: skip
    progress = not args.no_progress
    say = (lambda *a, **k: None) if args.json else print
    say(
        f"model: {path} ({loaded.model_config.name}, fingerprint {loaded.fingerprint}, "
        f"{loaded.preprocess.camera.image_size} px) with {embedder.describe()}"
    )
    with tempfile.TemporaryDirectory(prefix="liploc-eval-") as tmp:
        opts = (loaded.preprocess, args.cache_dir, args.workers, progress, tmp)
        map_set = _pictures(args.source, *opts, headings=args.headings)
        query_set = _pictures(args.queries, *opts) if args.queries else None
        result = evaluate_pictures(
            embedder.embed_camera,
            embedder.embed_lidar,
            loaded.preprocess,
            map_set,
            query_set,
            distance=args.distance,
            threshold_m=args.threshold,
            ks=args.k,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=progress,
            headings=args.headings,
        )
    summary = {"model": str(path), "fingerprint": loaded.fingerprint, **result.summary()}
    curve = None
    if args.queries:
        summary["localization"], curve = _localize_queries(args, embedder, result)
    frame = result.ground_truth_frame
    if frame and frame["suspect"]:  # loudly, on stderr too: a recall of 0 must not go unexplained
        print(f"liploc eval: {frame['message']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(result.report())
        if "localization" in summary:
            print(track_line(summary["localization"]))
    if args.out is not None:
        for what, where in save_eval_outputs(result, args.out).items():
            say(f"  {what}: {where}")
        if "localization" in summary:
            _save_localization(args, summary["localization"], curve, say)
    return 0


def _localize_queries(
    args: argparse.Namespace, embedder: Any, result: Any
) -> tuple[dict[str, Any], dict | None]:
    """The query drive localized in the map drive's embeddings, in ``args.mode``
    (:func:`~liploc_ros.evaluation.query_localization.localize_queries`)."""
    from liploc_ros.datasets.registry import open_source
    from liploc_ros.evaluation.query_localization import localize_queries

    figures, curve, why_not = localize_queries(
        result, open_source(args.source), open_source(args.queries), embedder,
        mode=args.mode, threshold_m=args.threshold,
        calibration_source=open_source(args.calibration or args.source),
        same_drive=args.calibration is None, calibration_frames=args.calibration_frames,
    )  # fmt: skip
    if why_not:
        print(f"WARNING: {why_not}", file=sys.stderr)
    if args.distance != "ground":
        figures["distance_note"] = "localization figures use the ground-plane distance"
    return figures, curve


def _save_localization(
    args: argparse.Namespace, figures: dict[str, Any], curve: dict | None, say: Any
) -> None:
    """The localization figures join summary.json at the top level, where tooling reads
    them for both commands (``liploc localize`` writes the same keys), and the curve."""
    from liploc_ros.io_utils import write_text_atomic

    path_json = Path(args.out) / "summary.json"
    saved = json.loads(path_json.read_text()) if path_json.exists() else {}
    saved.update(figures)
    write_text_atomic(path_json, json.dumps(saved, indent=2) + "\n")
    say(f"  localization figures ({args.mode}): {path_json}")
    if curve is not None:
        from liploc_ros.evaluation.plots import save_precision_curve

        png = save_precision_curve(
            Path(args.out) / "precision_curve.png", {args.queries: curve},
            title=f"{args.queries} in {args.source}: precision vs fix ratio",
        )  # fmt: skip
        say(f"  precision / fix-ratio curve: {png}")
