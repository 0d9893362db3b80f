"""The drive a command reads, named by flags: one set for ``liploc build-map`` and ``localize``.

Either ``--source SPEC`` (any kind of :mod:`liploc_ros.datasets.registry`) or the flag of
one registry kind: ``--bag PATH``, ``--kitti ROOT`` (``--sequence``, or a sequence folder),
``--kitti360 ROOT --drive D``, ``--synthetic SEED[:TRAVERSAL[:FRAMES]]`` or a `liploc synth`
output folder. :func:`source_spec` turns them into the registry's ``kind:arguments`` spec,
so the two commands read their flags alike and cannot drift apart.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from liploc_ros.datasets.registry import known_kinds
from liploc_ros.errors import ConfigError

__all__ = ["KIND_FLAGS", "add_source_arguments", "source_spec", "synthetic_spec"]

#: registry kind -> the flag that names a source of that kind
KIND_FLAGS = {"bag": "--bag", "kitti": "--kitti", "kitti360": "--kitti360",
              "synthetic": "--synthetic"}  # fmt: skip
_SYNTHETIC_SPEC = re.compile(r"(synthetic:)?\d+(:\d+){0,2}")
#: the registry's defaults for a bare ``synthetic:SEED``
_SYNTHETIC_DEFAULTS = (0, 300)


def add_source_arguments(
    parser: argparse.ArgumentParser, title: str, *, traversal_flags: bool = False
) -> None:
    """The source flags; ``traversal_flags`` adds ``--traversal`` and ``--frames`` for a
    bare ``--synthetic SEED`` (``liploc build-map``'s older spelling)."""
    src = parser.add_argument_group(title)
    src.add_argument("--source", help=f"kind:args, e.g. {known_kinds()}")
    src.add_argument("--bag", type=Path, help="a ROS 1 or ROS 2 bag")
    src.add_argument("--kitti", type=Path, help="KITTI odometry root (with --sequence) or a "
                     "sequence folder")  # fmt: skip
    src.add_argument("--sequence", help="KITTI sequence, e.g. 08 (or traversal of a liploc "
                     "synth folder)")  # fmt: skip
    src.add_argument("--kitti360", type=Path, help="KITTI-360 root (with --drive)")
    src.add_argument("--drive", help="KITTI-360 drive number or name")
    src.add_argument("--synthetic", metavar="SEED_OR_DIR",
                     help="SEED[:TRAVERSAL[:FRAMES]] rendered on the fly, or a `liploc synth` "
                     "output folder (traversal --sequence, default 01)")  # fmt: skip
    if traversal_flags:
        src.add_argument("--traversal", type=int, help="traversal of --synthetic SEED (0)")
        src.add_argument("--frames", type=int, help="frames of --synthetic SEED (300)")


def synthetic_spec(value: str, sequence: str | None) -> str:
    """``--synthetic``: a spec, or a `liploc synth` folder (kitti or bag layout)."""
    if _SYNTHETIC_SPEC.fullmatch(value.strip()):
        rest = value.strip().removeprefix("synthetic:")
        return f"synthetic:{rest}"
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"--synthetic {value!r}: neither SEED[:TRAVERSAL[:FRAMES]] nor an existing folder"
        )
    seq = f"{int(sequence):02d}" if sequence and sequence.isdigit() else (sequence or "01")
    if (folder / "kitti" / "sequences").is_dir():
        return f"kitti:{folder / 'kitti'}:{seq}"
    if (folder / "sequences").is_dir():
        return f"kitti:{folder}:{seq}"
    if (folder / "image_2").is_dir():
        return f"kitti:{folder}"
    if (folder / "bags").is_dir():
        return f"bag:{folder / 'bags' / f't{int(seq)}'}"
    raise ConfigError(
        f"--synthetic {folder}: not a `liploc synth` output (no kitti/sequences, sequences/, "
        "image_2/ or bags/ inside)"
    )


def _synthetic(args: argparse.Namespace) -> str:
    """``--synthetic`` with ``--traversal`` / ``--frames`` where the command has them."""
    spec = synthetic_spec(args.synthetic, args.sequence)
    if not hasattr(args, "traversal"):
        return spec
    given = (args.traversal, args.frames)
    if spec.startswith("synthetic:") and ":" not in spec.removeprefix("synthetic:"):
        parts = [d if g is None else g for g, d in zip(given, _SYNTHETIC_DEFAULTS, strict=True)]
        return f"{spec}:{parts[0]}:{parts[1]}"
    if any(g is not None for g in given):
        raise ConfigError("--traversal and --frames go with a bare --synthetic SEED")
    return spec


def source_spec(args: argparse.Namespace) -> str:
    """The one source the flags name, as a registry spec (``open_source`` opens it)."""
    given = []
    if args.source:
        given.append(args.source)
    if args.bag is not None:
        given.append(f"bag:{args.bag}")
    if args.kitti is not None:
        given.append(f"kitti:{args.kitti}" + (f":{args.sequence}" if args.sequence else ""))
    if args.kitti360 is not None:
        if not args.drive:
            raise ConfigError("--kitti360 needs --drive")
        given.append(f"kitti360:{args.kitti360}:{args.drive}")
    if args.synthetic is not None:
        given.append(_synthetic(args))
    if len(given) != 1:
        flags = list(KIND_FLAGS.values())
        raise ConfigError(
            f"name exactly one source: --source SPEC, {', '.join(flags[:-1])} or {flags[-1]}"
            + (f" (got {', '.join(given)})" if given else "")
        )
    folder = args.synthetic is not None and not given[0].startswith("synthetic:")
    if args.sequence and args.kitti is None and not folder:
        raise ConfigError("--sequence goes with --kitti or a --synthetic folder")
    if args.drive and args.kitti360 is None:
        raise ConfigError("--drive goes with --kitti360")
    return given[0]
