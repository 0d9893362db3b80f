"""``liploc calibrate``: measure what a map's scores mean on a labelled drive, store it in the
map.

    liploc calibrate --map town.lmap --model M.safetensors --queries bag:run2/
    liploc calibrate --map 08.lmap --model liploc_vit.pth --queries kitti:/data/kitti:08

The queries are camera frames with ground-truth poses in the map's frame, best of another
day than the map's drive (the better data: ``liploc build-map`` calibrates on the map's own
drive, whose scores are optimistic). Their scores give the map's calibration
(:mod:`liploc_ros.localization.calibration`): the log-likelihood ratio of a score, how fast
scores decorrelate along a drive, the sequence filter's acquisition bar and the frame
floor. The map file is rewritten atomically with it (a crash leaves the old one); its
entries and index are unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from liploc_ros.cli.encoder_flags import add_encoder_arguments, encoder_options
from liploc_ros.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--map", type=Path, required=True, help="map database file (rewritten)")
    parser.add_argument("--model", type=Path, required=True,
                        help="the map's model (.safetensors, or an authors' .pth)")  # fmt: skip
    parser.add_argument(
        "--queries", required=True,
        help="labelled drive: kitti:ROOT:SEQ, kitti360:ROOT:DRIVE, bag:PATH (with a camera "
        "topic and poses), synthetic:SEED:TRAVERSAL:FRAMES",
    )  # fmt: skip
    parser.add_argument(
        "--max-frames", type=int, default=600,
        help="camera frames measured at most (600), spread over the drive",
    )  # fmt: skip
    parser.add_argument(
        "--same-drive", choices=("auto", "yes", "no"), default="auto",
        help="the queries are the map's own drive, whose scores are optimistic (auto: when "
        "their source is one the map was built from)",
    )  # fmt: skip
    parser.add_argument("--normalize", action="store_true", default=None,
                        help="an authors' .pth is their L2-normalised (Norm) variant")  # fmt: skip
    add_encoder_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from liploc_ros.datasets.registry import open_source
    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.mapping.calibration_drive import calibrate_from_source
    from liploc_ros.model.model_file import load_embedder

    if args.max_frames < 20:
        raise ConfigError(f"--max-frames must be at least 20, got {args.max_frames}")
    path = args.map.expanduser()
    database = MapDatabase.load(path)
    embedder = load_embedder(args.model, normalize=args.normalize, **encoder_options(args))
    database.check_model(embedder.fingerprint, embedder.loaded.model_config.name)
    source = open_source(args.queries)
    same = {"yes": True, "no": False}.get(args.same_drive, source.name in database.info.sources)
    print(f"calibrating {path} ({len(database)} entries) on {source.name}"
          + (" (the map's own drive: matched from 1.5 m aside)" if same else ""))  # fmt: skip
    with tqdm(total=args.max_frames, unit=" frames", desc="calibrating",
              disable=args.no_progress, dynamic_ncols=True) as bar:  # fmt: skip
        calibration = calibrate_from_source(
            database, source, embedder, same_drive=same, max_frames=args.max_frames,
            progress=lambda n: bar.update(n - bar.n),
        )  # fmt: skip
    if calibration is None:
        raise ConfigError(
            f"--queries {args.queries}: {source.name} has no camera frames with poses in the "
            "map's frame; a calibration needs both"
        )
    database.set_calibration(calibration.to_dict())
    database.save(path, progress=not args.no_progress)
    for line in calibration.describe():
        print(line)
    print(f"written into {path}")
    return 0
