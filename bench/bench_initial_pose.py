"""Sequence mode started from an operator's initial pose (the node's ``initialpose``).

Per town (default 0, 1, 2 and 100), map from drive 0 calibrated from its own drive (as
``liploc build-map`` does), queries from drive 1 with their drifting odometry, the
SequenceConfig defaults. Each run starts at frame ``start`` (0, 100, 150 and 200) with:

- ``none``: no prior (global localization, as bench_sequence (b));
- ``good``: a prior within 5 m and 20 degrees of the truth (a random offset per run, RViz's
  default "2D Pose Estimate" covariance: 0.5 m and 15 degrees standard deviations);
- ``wrong``: a prior 200 m off, on the map (the pose of the map entry nearest to 200 m
  from the truth: another mapped street). A prior wholly off the map would be refused, as
  the node refuses it (``off map`` in the offset column), and that run would go on as
  ``none``.

It prints the distance driven until the first fix and until the first right fix (within
20 m), and the wrong fixes (> 20 m) of the whole run. Goals: ``good``, first fix within
5 m; ``wrong``, a right fix within 60 m, as after a kidnap.

    .venv/bin/python bench/bench_initial_pose.py [--towns 0,1,2,100]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_sequence import calibrated, cpu_line
from sequence_data import build_map, map_arrays, query_stream

from liploc_ros.errors import MapError
from liploc_ros.evaluation.tracks import fix_errors, travelled
from liploc_ros.localization.calibration import evidence_for
from liploc_ros.localization.motion import motions_from_odometry
from liploc_ros.localization.sequence import (
    SequenceFilter,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.mapping.headings import parse_headings
from liploc_ros.model import Embedder
from liploc_ros.model.model_file import load_model_file

STARTS = (0, 100, 150, 200)
#: RViz's "2D Pose Estimate": x and y variance 0.25 m^2, yaw variance 0.0685 rad^2
RVIZ_COVARIANCE = np.diag([0.25, 0.25, 0.06853891945200942])
GOOD_RADIUS_M, GOOD_YAW_DEG, WRONG_M = 5.0, 20.0, 200.0
#: SequenceConfig overrides (--set key=value)
OVERRIDES: dict = {}


def xyyaw(T: np.ndarray) -> np.ndarray:
    return np.array([T[0, 3], T[1, 3], math.atan2(T[1, 0], T[0, 0])])


def prior(kind: str, truth: np.ndarray, start: int, rng: np.random.Generator, db) -> np.ndarray:
    """The operator's x, y, yaw for a run starting at ``start``."""
    pose = xyyaw(truth[start])
    if kind == "good":
        r = GOOD_RADIUS_M * math.sqrt(rng.uniform())
        a = rng.uniform(-math.pi, math.pi)
        turn = math.radians(rng.uniform(-GOOD_YAW_DEG, GOOD_YAW_DEG))
        return pose + np.array([r * math.cos(a), r * math.sin(a), turn])
    # a wrong place on the map (an operator's slip: another street of the mapped roads): the
    # map entry nearest to 200 m away from the truth, with its heading
    gap = np.hypot(*(db.positions[:, :2] - pose[:2]).T)
    entry = int(np.argmin(np.abs(gap - WRONG_M)))
    return xyyaw(db.poses_at(np.array([entry]))[0])


def run(db, evidence, qs, start: int, kind: str, rng: np.random.Generator) -> dict:
    loc = SequenceFilter(db, evidence, SequenceConfig(**OVERRIDES))
    given, refused = None, False
    if kind != "none":
        given = prior(kind, qs.truth, start, rng, db)
        try:
            loc.seed(given, RVIZ_COVARIANCE)
        except MapError:  # wholly off the map: refused, as the node does (a WARN there)
            refused = True
    sl = slice(start, None)
    motions = [None, *motions_from_odometry(qs.odometry, len(qs))[start + 1 :]]
    est = run_sequence(loc, qs.embeddings[sl], qs.stamps[sl], motions)
    truth = qs.truth[sl]
    ok, err, _ = fix_errors(est, truth)
    dist = travelled(truth)
    first = np.flatnonzero(ok)
    right = np.flatnonzero(ok & (err < 20.0))
    offset = None if given is None else float(np.hypot(*(given[:2] - xyyaw(truth[0])[:2])))
    return {
        "start": start,
        "prior": kind,
        "prior_offset_m": offset,
        "prior_refused": refused,
        "first_fix_m": float(dist[first[0]]) if first.size else None,
        "first_fix_error_m": float(err[first[0]]) if first.size else None,
        "first_right_fix_m": float(dist[right[0]]) if right.size else None,
        "wrong_fixes": int((ok & (err >= 20.0)).sum()),
        "fix_ratio": float(ok.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towns", default="0,1,2,100")
    ap.add_argument("--model", default="models/liploc_demo.safetensors")
    ap.add_argument("--cache", type=Path, default=Path("out/bench_cache"))
    ap.add_argument("--headings", default="0,180")
    ap.add_argument("--out", type=Path, default=Path("out/bench_initial_pose.json"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a SequenceConfig field (repeatable)")  # fmt: skip
    args = ap.parse_args()
    for item in args.set:
        key, _, value = item.partition("=")
        OVERRIDES[key] = json.loads(value)
    headings = parse_headings(args.headings)
    embedder = Embedder(load_model_file(args.model), device="cpu", precision="fp32")
    rows = []
    print(f"{'town':>4} {'start':>5} {'prior':<6} {'offset_m':>8} {'1st_fix_m':>9} "
          f"{'err_m':>6} {'1st_right_m':>11} {'wrong':>5} {'fix':>5}")  # fmt: skip
    for town in (int(t) for t in args.towns.split(",")):
        part = map_arrays(embedder, args.cache, town, headings=headings)
        db = build_map(embedder, [part], [f"synthetic/seed{town}/t0"])
        calibrated(db, embedder, [query_stream(embedder, args.cache, town, 0)], same_drive=True)
        evidence = evidence_for(db)[0]
        qs = query_stream(embedder, args.cache, town, 1)
        rng = np.random.default_rng(town)
        for start in STARTS:
            for kind in ("none", "good", "wrong"):
                r = {"town": town, **run(db, evidence, qs, start, kind, rng)}
                rows.append(r)
                offset = "off map" if r["prior_refused"] else _f(r["prior_offset_m"], ".1f")
                print(f"{town:>4} {start:>5} {kind:<6} {offset:>8} "
                      f"{_f(r['first_fix_m'], '.1f'):>9} {_f(r['first_fix_error_m'], '.1f'):>6} "
                      f"{_f(r['first_right_fix_m'], '.1f'):>11} {r['wrong_fixes']:>5} "
                      f"{r['fix_ratio']:>5.2f}")  # fmt: skip
    for kind in ("none", "good", "wrong"):
        sel = [r for r in rows if r["prior"] == kind]
        firsts = [r["first_right_fix_m"] for r in sel]
        missing = sum(f is None for f in firsts)
        worst = max((f for f in firsts if f is not None), default=float("nan"))
        print(
            f"{kind:<6}: first right fix within {worst:.1f} m at worst ({missing} runs "
            f"without), {sum(r['wrong_fixes'] for r in sel)} wrong fixes in {len(sel)} runs"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"headings": headings, "rows": rows}, indent=1))
    print(f"written {args.out}")
    print(cpu_line())


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


if __name__ == "__main__":
    main()
