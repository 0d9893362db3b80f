"""Sequence localization (MCL: odometry + retrieval) against single-frame, on unseen towns.

Per town (default 0, 1, 2 and 100: none used in training or in calibrating the filter),
map from drive 0 (a keyframe every metre, one entry per crop heading: ``--headings``,
default 0,180), queries from drive 1 (the same lane another
day) with the simulated drifting odometry (liploc_ros.datasets.odometry), one set of
parameters (SequenceConfig defaults) for every town and scenario:

- (a) the whole drive from its start; the single-frame localizer's figures beside it;
- (b) starting mid-route (frame 150, no prior);
- (c) kidnap: frames 0-99, then the stream jumps to frame 220 (about 120 m further along the
  route) while the odometry reports an ordinary step: distance driven until the fixes are
  within 20 m again, and the wrong fixes (> 20 m) in between;
- (d) off the map: frames 0-99, then 60 frames of another town's drive (streets the map
  does not hold), then frames 160-299: fixes published later than 30 m after leaving the
  map, and the distance driven after re-entering until the first right fix;
- drives 2 (the other lane), 3 and 4 (the other direction, right and left lane): the
  whole drive, sequence and single-frame, which only a map with a rear crop can serve;
- (e) no odometry at all (random walk), against the single-frame wrong fixes;
- (f) a big, ambiguous map: the town's map merged with the maps of towns 10-18, each
  shifted 5 km from the others, so that look-alike streets compete;
- the filter's own cost per frame (not the encoder; the index search shown apart) at 10k
  and 100k map entries (route-like synthetic embeddings, the map's default index).

Embeddings are computed once per model and cached (bench/sequence_data.py), so a second
run only runs the filters.

    .venv/bin/python bench/bench_sequence.py [--towns 0,1,2,100] [--headings 0,180]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from sequence_data import QueryStream, build_map, map_arrays, query_stream, shifted

from liploc_ros.localization.config import DEFAULT_CONFIG
from liploc_ros.localization.estimate import estimate_pose
from liploc_ros.localization.motion import Motion
from liploc_ros.localization.sequence import (
    SequenceLocalizer,
    motions_from_odometry,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.localization.track_metrics import fix_errors, relock, track_summary
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping.headings import parse_headings
from liploc_ros.model import Embedder
from liploc_ros.model.model_file import load_model_file

OTHER_TOWNS = tuple(range(10, 19))
OFF_MAP_TOWN = 3
SHIFT_M = 5000.0


def single_frame(db: MapDatabase, queries: np.ndarray, stamps: np.ndarray) -> list:
    """The single-frame localizer's estimates (top-k retrieval, default settings)."""
    found = db.search(queries, DEFAULT_CONFIG.top_k * db.entries_per_keyframe)
    emb = np.asarray(db.embeddings, np.float64)
    out = []
    for i in range(len(queries)):
        idx, sc = found.indices[i], found.scores[i]
        scale = float(np.linalg.norm(queries[i])) * float(np.linalg.norm(emb[idx[0]]))
        kf = db.keyframes[np.maximum(idx, 0)]
        out.append(estimate_pose(idx, sc, found.poses[i], stamps[i], DEFAULT_CONFIG,
                                 scale=scale, keyframes=kf))  # fmt: skip
    return out


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


#: SequenceConfig overrides (--set key=value)
OVERRIDES: dict[str, Any] = {}


def run(db: MapDatabase, emb: np.ndarray, stamps: np.ndarray, motions: list) -> tuple[list, float]:
    loc = SequenceLocalizer(db, SequenceConfig(**OVERRIDES))
    t0 = time.perf_counter()
    est = run_sequence(loc, emb, stamps, motions)
    return est, (time.perf_counter() - t0) / len(est) * 1000.0


def town_rows(
    embedder: Embedder, cache: Path, seed: int, others: list[dict], headings: tuple
) -> list[dict[str, Any]]:
    part = map_arrays(embedder, cache, seed, headings=headings)
    db = build_map(embedder, [part], [f"synthetic/seed{seed}/t0"])
    qs = query_stream(embedder, cache, seed, 1)
    motions = motions_from_odometry(qs.odometry, len(qs))
    rows: list[dict[str, Any]] = []

    def row(scenario: str, est: list, truth: np.ndarray, ms: float, **extra: Any) -> None:
        s = track_summary(est, truth, top1_error_m=extra.pop("top1", None))
        rows.append({"town": seed, "scenario": scenario, **s, "filter_ms": ms, **extra})

    top1 = top1_errors(db, qs.embeddings, qs.truth)
    est, ms = run(db, qs.embeddings, qs.stamps, motions)
    single = single_frame(db, qs.embeddings, qs.stamps)
    row("a", est, qs.truth, ms, top1=top1)
    row("a single", single, qs.truth, float("nan"), top1=top1)

    mid = slice(150, None)
    m2 = [None, *motions[151:]]
    est, ms = run(db, qs.embeddings[mid], qs.stamps[mid], m2)
    row("b", est, qs.truth[mid], ms)

    e, t, st, m = splice([(qs, slice(0, 100)), (qs, slice(220, 300))])
    est, ms = run(db, e, st, m)
    row("c", est, t, ms, **{f"kidnap_{k}": v for k, v in relock(est, t, 100).items()})

    away = query_stream(embedder, cache, OFF_MAP_TOWN, 1)
    e, t, st, m = splice([(qs, slice(0, 100)), (away, slice(100, 160)), (qs, slice(160, 300))])
    truth_eval = t.copy()
    truth_eval[100:160] = np.nan
    est, ms = run(db, e, st, m)
    away_xy = away.truth[100:160, :2, 3]
    gone = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(away_xy, axis=0).T))])
    late = sum(1 for j in range(60) if est[100 + j].ok and gone[j] > 30.0)
    back = relock(est, truth_eval, 160)
    row("d", est, truth_eval, ms, offmap_fixes_after_30m=late,
        reenter_relock_m=back["relock_distance_m"],
        reenter_wrong_fixes=back["wrong_fixes"])  # fmt: skip

    est, ms = run(db, qs.embeddings, qs.stamps, [None] * len(qs))
    ok, err, _ = fix_errors(single, qs.truth)
    single_wrong = int((err[ok] >= 20.0).sum())
    row("e", est, qs.truth, ms, single_frame_wrong_fixes=single_wrong)

    # other lane (2) and the other direction (3: its right lane, 4: its left lane)
    for traversal in (2, 3, 4):
        other = query_stream(embedder, cache, seed, traversal)
        moves = motions_from_odometry(other.odometry, len(other))
        top1 = top1_errors(db, other.embeddings, other.truth)
        est, ms = run(db, other.embeddings, other.stamps, moves)
        row(f"drive{traversal}", est, other.truth, ms, top1=top1)
        single = single_frame(db, other.embeddings, other.stamps)
        row(f"drive{traversal} single", single, other.truth, float("nan"), top1=top1)

    big = build_map(
        embedder,
        [part, *(shifted(o, SHIFT_M * (i + 1), 0.0) for i, o in enumerate(others))],
        [f"synthetic/seed{seed}/t0", *(f"other{i}" for i in range(len(others)))],
    )
    est, ms = run(big, qs.embeddings, qs.stamps, motions)
    row(
        "f",
        est,
        qs.truth,
        ms,
        map_entries=len(big),
        top1=top1_errors(big, qs.embeddings, qs.truth),
    )
    return rows


def cost_rows(sizes: tuple[int, ...] = (10_000, 100_000), frames: int = 200) -> list[dict]:
    """Filter cost at large maps: route-like embeddings, a query stream along the route."""
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
        loc = SequenceLocalizer(db, SequenceConfig(**OVERRIDES))
        est = run_sequence(loc, q, np.arange(frames) * 0.1, motions)
        f = np.array([e.timings_ms["filter"] for e in est[10:]])
        s = np.array([e.timings_ms["search"] for e in est[10:]])
        out.append({"entries": n, "index": db.index_kind, "filter_ms_p50": float(np.median(f)),
                    "filter_ms_p95": float(np.percentile(f, 95)),
                    "search_ms_p50": float(np.median(s))})  # fmt: skip
    return out


def _f(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towns", default="0,1,2,100")
    ap.add_argument("--model", default="models/liploc_demo.safetensors")
    ap.add_argument("--cache", type=Path, default=Path("out/bench_cache"))
    ap.add_argument("--out", type=Path, default=Path("out/bench_sequence.json"))
    ap.add_argument("--no-cost", action="store_true")
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
    others = [map_arrays(embedder, args.cache, s, headings=headings) for s in OTHER_TOWNS]
    print(f"map entries per keyframe: crops facing {', '.join(f'{h:g}' for h in headings)} deg")
    rows = []
    print(f"{'town':>4} {'sc':<8} {'fix_ratio':>9} {'prec20':>7} {'prec5':>6} {'wrong':>5} "
          f"{'med_m':>6} {'p95_m':>7} {'yaw_deg':>7} {'1st_fix_m':>9} {'R@1':>6}  "
          "extra")  # fmt: skip
    for seed in (int(t) for t in args.towns.split(",")):
        for r in town_rows(embedder, args.cache, seed, others, headings):
            rows.append(r)
            extra = {
                k: r[k]
                for k in r
                if k.startswith(("kidnap", "offmap", "reenter", "single_frame", "map_entries"))
            }
            print(f"{r['town']:>4} {r['scenario']:<8} {_f(r['fix_ratio']):>9} "
                  f"{_f(r['fix_precision_20m']):>7} {_f(r['fix_precision_5m'], '.2f'):>6} "
                  f"{r['wrong_fixes']:>5} {_f(r['median_error_m'], '.2f'):>6} "
                  f"{_f(r['p95_error_m'], '.1f'):>7} {_f(r['median_yaw_error_deg'], '.2f'):>7} "
                  f"{_f(r['first_fix_distance_m'], '.1f'):>9} {_f(r.get('recall_at_1')):>6}  "
                  f"{extra if extra else ''}", flush=True)  # fmt: skip
    cost = [] if args.no_cost else cost_rows()
    for c in cost:
        print(f"filter cost at {c['entries']} entries ({c['index']} index): "
              f"{c['filter_ms_p50']:.2f} ms p50, {c['filter_ms_p95']:.2f} ms p95 per frame; "
              f"index search {c['search_ms_p50']:.2f} ms p50")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"headings": headings, "rows": rows, "cost": cost}
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
