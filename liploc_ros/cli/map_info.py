"""``liploc map-info``: what a map database holds, and a picture of its route."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", type=Path, help="a liploc map file")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="where to write the route PNG (default: beside the map, MAP.route.png)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the route")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the checksum of every byte (faster)"
    )


def default_plot_path(map_path: Path) -> Path:
    return map_path.with_name(map_path.stem + ".route.png")


def _index_text(index: dict) -> str:
    """The index kind's own one-line description of the header entry ``index``."""
    from liploc_ros.mapdb.indexes.registry import get_kind

    kind = get_kind(index["kind"])
    return kind.describe(kind.params_from_header(index))


def run(args: argparse.Namespace) -> int:
    from liploc_ros.localization.calibration import map_calibration
    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.mapdb.summary import describe, plot_route

    db = MapDatabase.load(args.map, verify=not args.no_verify)
    info = describe(db)
    calibration = map_calibration(db)
    info["calibration"] = calibration.to_dict() if calibration is not None else None
    plot = None
    if not args.no_plot:
        plot = plot_route(db, args.plot or default_plot_path(args.map))
        info["plot"] = str(plot)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    for key, value in _info_lines(info, plot):
        print(f"{key + ':':14s}{value}")
    for line in _calibration_lines(calibration, db):
        print(line)
    return 0


def _info_lines(info: dict[str, Any], plot: Any) -> list[tuple[str, str]]:
    """(label, text) of every map figure map-info prints."""
    ext = info["extent_m"]
    lidar = info["lidar"]
    stamps = info["stamps"]
    lines = [
        (
            "file",
            f"{info['path']} ({info['file_bytes']:,} bytes, format {info['format_version']})",
        ),
        ("entries", f"{info['entries']:,} from {info['keyframes']:,} keyframes"),
        (
            "headings",
            ", ".join(f"{h:g}" for h in info["headings_deg"]) + " deg (crop centres, CCW)"
            if info["headings_deg"]
            else "-",
        ),
        ("model", f"{info['model']['name']} (fingerprint {info['model']['fingerprint']})"),
        (
            "embeddings",
            f"{info['embedding']['dim']}-d {info['embedding']['dtype']}, L2-normalised: "
            f"{info['embedding']['normalized']}",
        ),
        ("index", _index_text(info["index"])),
        ("frame_id", info["frame_id"]),
        (
            "extent",
            f"x {ext['min'][0]:.1f}..{ext['max'][0]:.1f}, "
            f"y {ext['min'][1]:.1f}..{ext['max'][1]:.1f}, "
            f"z {ext['min'][2]:.1f}..{ext['max'][2]:.1f} m "
            f"({ext['size'][0]:.1f} x {ext['size'][1]:.1f} m)"
            if ext
            else "(empty map)",
        ),
        ("route length", f"{info['route_length_m']:.1f} m"),
        (
            "stamps",
            f"{stamps['first']:.3f} .. {stamps['last']:.3f} s" if info["entries"] else "-",
        ),
        (
            "sources",
            "; ".join(
                f"{s['name']} ({s['entries']} entries, {s['route_length_m']:.1f} m)"
                for s in info["sources"]
            ),
        ),
        (
            "range image",
            f"{lidar['sensor']} {lidar['height']}x{lidar['width']}, crop {lidar['crop']}, "
            f"max range {lidar['max_range']} m, empty {lidar['empty_mode']}",
        ),
        ("created", f"{info['created']} (liploc_ros {info['liploc_ros_version']})"),
    ]
    if plot is not None:
        lines.append(("route plot", str(plot)))
    return lines


def _calibration_lines(calibration: Any, db: Any) -> list[str]:
    """The calibration as map-info shows it, or why the localizers will not use one."""
    if calibration is None:
        return [
            "calibration:  none: the localizers use conservative settings (few fixes, late); "
            "`liploc calibrate --map MAP --model MODEL --queries SOURCE` measures one"
        ]
    lines = calibration.describe()
    if calibration.model_fingerprint != db.info.model_fingerprint:
        lines.append(
            f"  WARNING: measured with model {calibration.model_fingerprint}, not the map's "
            f"{db.info.model_fingerprint}: the localizers do not use it (recalibrate)"
        )
    return lines
