"""Sequence localization (MCL: odometry + retrieval) against single-frame, on unseen towns.

Per town (default 0, 1, 2 and 100: none used in training), map from drive 0 (a keyframe
every metre, one entry per crop heading: ``--headings``, default 0,180), queries from drive
1 (the same lane another day) with the simulated drifting odometry
(liploc_ros.datasets.odometry). Every map is calibrated as ``liploc build-map`` calibrates
it (``--calibration map``: from its own drive's camera frames), or with one calibration
measured on drive 1 of the calibration towns 3, 4 and 5 (``--calibration drive1``); the
filter's settings are the SequenceConfig defaults for every town and scenario:

- (a) the whole drive from its start; the single-frame localizer's figures beside it;
- (b) starting mid-route (frame 150, no prior);
- (c) kidnap: frames 0-99, then the stream jumps to frame 220 (about 120 m further along the
  route) while the odometry reports an ordinary step: distance driven until the fixes are
  within 20 m again, and the wrong fixes (> 20 m) in between;
- (d) off the map: frames 0-99, then 60 frames of another town's drive (streets the map
  does not hold), then frames 160-299: fixes published later than 30 m after leaving the
  map, the distance driven after re-entering until the first right fix, and the off-map
  probability on and off the map;
- drives 2 (the other lane), 3 and 4 (the other direction, right and left lane): the
  whole drive, sequence and single-frame, which only a map with a rear crop can serve;
- (e) no odometry at all (random walk), against the single-frame wrong fixes;
- (f) a big, ambiguous map: the town's map merged with the maps of towns 10-18, each
  shifted 5 km from the others, so that look-alike streets compete; (g) with towns 10-58;
- the filter's own cost per frame (not the encoder; the index search shown apart) at 10k,
  100k and 1M map entries (route-like synthetic embeddings, the map's default index).

Each row also gives ``fix_ratio_at_precision_99``: the fix ratio the gate reaches at 99%
precision over a sweep of its target (the filter's particles do not depend on the gate).
``--plot`` draws town ``--plot-town``'s precision / fix-ratio curves as a PNG.
Embeddings are computed once per model and cached (bench/sequence_data.py).

    .venv/bin/python bench/bench_sequence.py [--towns 0,1,2,100] [--calibration map]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from sequence_data import QueryStream, build_map, map_arrays, query_stream, shifted

from liploc_ros.device import read_cpu_flags
from liploc_ros.evaluation.tracks import (
    fix_errors,
    fix_ratio_at_precision,
    precision_curve,
    relock,
    track_summary,
)
from liploc_ros.localization.calibration import LabelledDrive, ScoreCalibration, calibrate
from liploc_ros.localization.config import DEFAULT_CONFIG
from liploc_ros.localization.fix_gate import GateRule
from liploc_ros.localization.localizer import FrameEstimator
from liploc_ros.localization.motion import Motion, motions_from_odometry
from liploc_ros.localization.sequence import (
    SequenceFilter,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping.headings import parse_headings
from liploc_ros.model import Embedder
from liploc_ros.model.model_file import load_model_file

TEN_TOWNS = tuple(range(10, 19))
FIFTY_TOWNS = tuple(range(10, 59))
CALIBRATION_TOWNS = (3, 4, 5)
OFF_MAP_TOWNS = (3, 4)  # the first that is not the town itself
SHIFT_M = 5000.0

#: SequenceConfig overrides (--set key=value)
OVERRIDES: dict[str, Any] = {}


def calibrated(db: MapDatabase, embedder: Embedder, drives: list[QueryStream],
               same_drive: bool) -> ScoreCalibration:  # fmt: skip
    """``db`` calibrated on ``drives`` (stored in it) as build-map / liploc calibrate do."""
    cal = calibrate(
        db,
        [LabelledDrive(d.embeddings, d.truth, d.odometry, d.name) for d in drives],
        model_fingerprint=embedder.fingerprint,
        same_drive=same_drive,
        config=SequenceConfig(**OVERRIDES),
    )
    db.set_calibration(cal.to_dict())
    return cal


def single_frame(db: MapDatabase, queries: np.ndarray, stamps: np.ndarray) -> list:
    """The single-frame localizer's estimates (the node's path, default settings)."""
    return FrameEstimator(db, DEFAULT_CONFIG).estimate_batch(queries, stamps)


def top1_errors(db: MapDatabase, queries: np.ndarray, truth: np.ndarray) -> np.ndarray:
    idx = db.search(queries, 1).indices[:, 0]
    return np.hypot(*(db.positions[idx, :2] - truth[:, :2, 3]).T)


def splice(
    parts: list[tuple[QueryStream, slice]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Pieces of streams back to back: embeddings, truth, stamps (continuous, 10 Hz) and the
    odometry motions each frame had in its own drive (the wheels know nothing of a jump)."""
    emb, truth, motions = [], [], []
    for stream, sl in parts:
        own = motions_from_odometry(stream.odometry, len(stream))
        emb.append(stream.embeddings[sl])
        truth.append(stream.truth[sl])
        motions += [
            own[i] if own[i] is not None else Motion(0.0, 0.0, 0.0) for i in range(len(stream))[sl]
        ]
    motions[0] = None
    e, t = np.concatenate(emb), np.concatenate(truth)
    return e, t, np.arange(len(e)) * 0.1, motions


def run(db: MapDatabase, emb: np.ndarray, stamps: np.ndarray, motions: list) -> tuple[list, float]:
    from liploc_ros.localization.calibration import evidence_for

    evidence, warning = evidence_for(db)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    loc = SequenceFilter(db, evidence, SequenceConfig(**OVERRIDES))
    t0 = time.perf_counter()
    est = run_sequence(loc, emb, stamps, motions)
    return est, (time.perf_counter() - t0) / len(est) * 1000.0


def gate_rule(db: MapDatabase) -> GateRule:
    from liploc_ros.localization.calibration import evidence_for

    return GateRule.of(SequenceConfig(**OVERRIDES), evidence_for(db)[0])


def town_rows(
    embedder: Embedder, cache: Path, seed: int, others: dict, headings: tuple,
    calibration: ScoreCalibration | None, curves: dict,
) -> list[dict[str, Any]]:  # fmt: skip
    part = map_arrays(embedder, cache, seed, headings=headings)
    drive0 = query_stream(embedder, cache, seed, 0)

    def town_map(extra: list[dict]) -> MapDatabase:
        db = build_map(
            embedder,
            [part, *(shifted(o, SHIFT_M * (i + 1), 0.0) for i, o in enumerate(extra))],
            [f"synthetic/seed{seed}/t0", *(f"other{i}" for i in range(len(extra)))],
        )
        if calibration is None:
            calibrated(db, embedder, [drive0], same_drive=True)
        else:
            db.set_calibration(calibration.to_dict())
        return db

    db = town_map([])
    qs = query_stream(embedder, cache, seed, 1)
    motions = motions_from_odometry(qs.odometry, len(qs))
    rows: list[dict[str, Any]] = []

    def row(scenario: str, est: list, truth: np.ndarray, ms: float, on: MapDatabase = db,
            **extra: Any) -> None:  # fmt: skip
        s = track_summary(est, truth, top1_error_m=extra.pop("top1", None))
        if not math.isnan(ms):  # sequence rows: the gate's sweep
            curve = precision_curve(est, truth, gate_rule(on))
            s["fix_ratio_at_precision_99"] = fix_ratio_at_precision(curve, 0.99)
            curves[(seed, scenario)] = curve
        rows.append({"town": seed, "scenario": scenario, **s, "filter_ms": ms, **extra})

    top1 = top1_errors(db, qs.embeddings, qs.truth)
    est, ms = run(db, qs.embeddings, qs.stamps, motions)
    row("a", est, qs.truth, ms, top1=top1)
    row("a single", single_frame(db, qs.embeddings, qs.stamps), qs.truth, float("nan"),
        top1=top1)  # fmt: skip

    mid = slice(150, None)
    est, ms = run(db, qs.embeddings[mid], qs.stamps[mid], [None, *motions[151:]])
    row("b", est, qs.truth[mid], ms)

    e, t, st, m = splice([(qs, slice(0, 100)), (qs, slice(220, 300))])
    est, ms = run(db, e, st, m)
    row("c", est, t, ms, **{f"kidnap_{k}": v for k, v in relock(est, t, 100).items()})

    away_town = next(t for t in OFF_MAP_TOWNS if t != seed)
    est, truth_eval, ms, extra = offmap_scenario(
        db, qs, query_stream(embedder, cache, away_town, 1)
    )
    row("d", est, truth_eval, ms, **extra)

    est, ms = run(db, qs.embeddings, qs.stamps, [None] * len(qs))
    ok, err, _ = fix_errors(single_frame(db, qs.embeddings, qs.stamps), qs.truth)
    row("e", est, qs.truth, ms, single_frame_wrong_fixes=int((err[ok] >= 20.0).sum()))

    # other lane (2) and the other direction (3: its right lane, 4: its left lane)
    for traversal in (2, 3, 4):
        other = query_stream(embedder, cache, seed, traversal)
        moves = motions_from_odometry(other.odometry, len(other))
        top1 = top1_errors(db, other.embeddings, other.truth)
        est, ms = run(db, other.embeddings, other.stamps, moves)
        row(f"drive{traversal}", est, other.truth, ms, top1=top1)
        row(f"drive{traversal} single", single_frame(db, other.embeddings, other.stamps),
            other.truth, float("nan"), top1=top1)  # fmt: skip

    for name, towns in (("f", TEN_TOWNS), ("g", FIFTY_TOWNS)):
        if not all(t in others for t in towns):
            continue
        big = town_map([others[t] for t in towns])
        est, ms = run(big, qs.embeddings, qs.stamps, motions)
        row(name, est, qs.truth, ms, on=big, map_entries=len(big),
            top1=top1_errors(big, qs.embeddings, qs.truth))  # fmt: skip
    return rows


def offmap_scenario(db: MapDatabase, qs: QueryStream, away: QueryStream) -> tuple:
    """(d): 100 frames on the map, 60 frames of another town (off the map), the rest back on
    it; (estimates, truth with NaN off the map, filter ms, the row's extra figures)."""
    e, t, st, m = splice([(qs, slice(0, 100)), (away, slice(100, 160)), (qs, slice(160, 300))])
    truth_eval = t.copy()
    truth_eval[100:160] = np.nan
    est, ms = run(db, e, st, m)
    away_xy = away.truth[100:160, :2, 3]
    gone = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(away_xy, axis=0).T))])
    late = sum(1 for j in range(60) if est[100 + j].ok and gone[j] > 30.0)
    back = relock(est, truth_eval, 160)
    off = np.array([x.offmap_probability for x in est])
    far = off[100:160][gone > 30]
    extra = {
        "offmap_fixes_after_30m": late,
        "reenter_relock_m": back["relock_distance_m"],
        "reenter_wrong_fixes": back["wrong_fixes"],
        "offmap_probability": {
            "on_map_median": float(np.median(off[50:100])),
            "off_map_after_30m_median": float(np.median(far)),
            "off_map_after_30m_min": float(np.min(far)),
        },
    }
    return est, truth_eval, ms, extra


def cost_rows(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), frames: int = 200) -> list:
    """Filter cost at large maps: route-like embeddings, a query stream along the route (the
    cost does not depend on the calibration: the conservative evidence model)."""
    from liploc_ros.localization.calibration import conservative_evidence
    from liploc_ros.mapdb.synthetic import synthetic_map

    out = []
    for n in sizes:
        db = synthetic_map(n, 128, seed=1)
        db.build_index("auto")
        start = n // 3
        ids = np.arange(start, start + frames)
        emb = np.asarray(db.embeddings[ids], np.float32)
        q = emb + 0.8 * np.random.default_rng(0).standard_normal(emb.shape).astype(np.float32)
        poses = db.poses_at(ids)
        motions = [None, *(Motion.between(poses[i - 1], poses[i]) for i in range(1, frames))]
        loc = SequenceFilter(db, conservative_evidence(), SequenceConfig(**OVERRIDES))
        est = run_sequence(loc, q, np.arange(frames) * 0.1, motions)
        f = np.array([e.timings_ms["filter"] for e in est[10:]])
        s = np.array([e.timings_ms["search"] for e in est[10:]])
        out.append({"entries": n, "index": db.index_kind, "filter_ms_p50": float(np.median(f)),
                    "filter_ms_p95": float(np.percentile(f, 95)),
                    "search_ms_p50": float(np.median(s))})  # fmt: skip
    return out


def drive1_calibration(embedder: Embedder, cache: Path, headings: tuple) -> ScoreCalibration:
    """One calibration for every town: drive 1 of the calibration towns on their merged map
    (labelled drives of another day, no town the bench scores)."""
    parts = [map_arrays(embedder, cache, s, headings=headings) for s in CALIBRATION_TOWNS]
    cal_map = build_map(embedder, [shifted(p, SHIFT_M * i, 0.0) for i, p in enumerate(parts)],
                        [f"calibration{s}" for s in CALIBRATION_TOWNS])  # fmt: skip
    drives = []
    for i, s in enumerate(CALIBRATION_TOWNS):
        d = query_stream(embedder, cache, s, 1)
        moved = d.truth.copy()
        moved[:, 0, 3] += SHIFT_M * i
        drives.append(QueryStream(d.embeddings, moved, d.odometry, d.stamps, d.name))
    return calibrated(cal_map, embedder, drives, same_drive=False)


def save_plot(path: Path, town: int, curves: dict, calibration: str) -> None:
    picked = {sc: c for (t, sc), c in curves.items() if t == town}
    if picked:
        from liploc_ros.evaluation.plots import save_precision_curve

        title = (
            f"town {town}: precision vs fix ratio over the gate's target ({calibration} "
            "calibration)"
        )
        save_precision_curve(path, picked, title=title)
        print(f"precision / fix-ratio curves: {path}")


def print_row(r: dict[str, Any]) -> None:
    extra = {k: r[k] for k in r if k.startswith(
        ("kidnap", "offmap", "reenter", "single_frame", "map_entries"))}  # fmt: skip
    print(f"{r['town']:>4} {r['scenario']:<15} {_f(r['fix_ratio']):>9} "
          f"{_f(r['fix_precision_20m']):>7} {r['wrong_fixes']:>5} "
          f"{_f(r.get('fix_ratio_at_precision_99')):>6} "
          f"{_f(r['median_error_m'], '.2f'):>6} {_f(r['p95_error_m'], '.1f'):>7} "
          f"{_f(r['median_yaw_error_deg'], '.2f'):>7} "
          f"{_f(r['first_fix_distance_m'], '.1f'):>9} {_f(r.get('recall_at_1')):>6}  "
          f"{extra if extra else ''}", flush=True)  # fmt: skip


def cpu_line() -> str:
    """The CPU's relevant flags (the filter's figures are timed on it)."""
    import os
    import platform

    flags = read_cpu_flags() or frozenset()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    have = [f for f in wanted if f in flags]
    return (
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, flags: "
        + (" ".join(have) or "none of " + " ".join(wanted))
    )


def _f(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towns", default="0,1,2,100")
    ap.add_argument("--model", default="models/liploc_demo.safetensors")
    ap.add_argument("--cache", type=Path, default=Path("out/bench_cache"))
    ap.add_argument("--out", type=Path, default=Path("out/bench_sequence.json"))
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--no-big", action="store_true", help="leave out (f) and (g)")
    ap.add_argument("--calibration", choices=("map", "drive1"), default="map",
                    help="map: each map from its own drive's camera frames (as build-map); "
                    "drive1: one calibration from drive 1 of towns 3, 4 and 5")  # fmt: skip
    ap.add_argument("--plot", type=Path, default=Path("out/bench_sequence_pr.png"))
    ap.add_argument("--plot-town", type=int, default=None, help="town of the PR plot (first)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a SequenceConfig field (repeatable)")  # fmt: skip
    ap.add_argument("--headings", default="0,180",
                    help="crop headings of the map entries (build-map's spelling)")  # fmt: skip
    args = ap.parse_args()
    headings = parse_headings(args.headings)
    for item in args.set:
        key, _, value = item.partition("=")
        OVERRIDES[key] = json.loads(value)
    embedder = Embedder(load_model_file(args.model), device="cpu", precision="fp32")
    towns = [int(t) for t in args.towns.split(",")]
    others = {} if args.no_big else {
        s: map_arrays(embedder, args.cache, s, headings=headings) for s in FIFTY_TOWNS
    }  # fmt: skip
    calibration = None
    if args.calibration == "drive1":
        calibration = drive1_calibration(embedder, args.cache, headings)
    print(f"map entries per keyframe: crops facing {', '.join(f'{h:g}' for h in headings)} deg; "
          f"calibration: {args.calibration}")  # fmt: skip
    if calibration is not None:
        print("\n".join(calibration.describe()))
    rows: list[dict] = []
    curves: dict = {}
    print(f"{'town':>4} {'sc':<15} {'fix_ratio':>9} {'prec20':>7} {'wrong':>5} "
          f"{'fix@99':>6} {'med_m':>6} {'p95_m':>7} {'yaw_deg':>7} {'1st_fix_m':>9} "
          f"{'R@1':>6}  extra")  # fmt: skip
    for seed in towns:
        for r in town_rows(embedder, args.cache, seed, others, headings, calibration, curves):
            rows.append(r)
            print_row(r)
    save_plot(args.plot, args.plot_town if args.plot_town is not None else towns[0], curves,
              args.calibration)  # fmt: skip
    cost = [] if args.no_cost else cost_rows()
    for c in cost:
        print(f"filter cost at {c['entries']} entries ({c['index']} index): "
              f"{c['filter_ms_p50']:.2f} ms p50, {c['filter_ms_p95']:.2f} ms p95 per frame; "
              f"index search {c['search_ms_p50']:.2f} ms p50")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"headings": headings, "calibration": args.calibration, "rows": rows, "cost": cost,
              "curves": {f"{t}/{sc}": c for (t, sc), c in curves.items()}}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(f"written {args.out}")
    print(cpu_line())


if __name__ == "__main__":
    main()
