"""``liploc merge-maps``: one map from several built with the same model."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    from liploc_ros.mapdb.indexes.registry import index_choices

    parser.add_argument("out", type=Path, help="the merged map file to write")
    parser.add_argument("maps", type=Path, nargs="+", help="two or more map files")
    parser.add_argument(
        "--index",
        default="auto",
        choices=index_choices(),
        help="search index stored with the merged map (auto: exact below 200k entries)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite OUT if it exists (atomically)"
    )


def run(args: argparse.Namespace) -> int:
    from liploc_ros.errors import MapError
    from liploc_ros.mapdb import MapDatabase, merge_maps

    if len(args.maps) < 2:
        raise MapError("merge-maps needs at least two maps to merge")
    out = args.out.resolve()
    if any(p.resolve() == out for p in args.maps) and not args.force:
        raise MapError(f"{args.out} is also an input; pass --force to replace it")
    if args.out.exists() and not args.force:
        raise MapError(f"{args.out} exists; pass --force to replace it")
    maps = [MapDatabase.load(p) for p in args.maps]
    merged = merge_maps(maps)
    merged.save(args.out, index=args.index)
    print(
        f"wrote {args.out}: {len(merged):,} entries from {len(maps)} maps "
        f"({', '.join(merged.info.sources)}), index {merged.index_kind}"
    )
    return 0
