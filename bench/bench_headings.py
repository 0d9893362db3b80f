"""Single-frame Recall@1 by map kind: forward crop, rear crop, both; drives 1-4 of a town.

A map is built from one drive, but vehicles come back in the other lane and the other way.
Per town (default 0, 1, 2 and 100), map from drive 0 (a keyframe every metre) with entries
whose crop faces 0 deg (the authors' forward crop), 180 deg (the rear crop) or both; queries
from every frame of drives 1 (same lane, another day), 2 (the other lane), 3 and 4 (the other
direction, right and left lane). Recall@1 at 20 m (ground-plane distance of the best entry),
the chance level beside it (the share of map keyframes within 20 m, averaged over queries).

Goals with both crops and the demo model: drive 1 >= 0.60, drives 2, 3, 4 >= 0.50. Prints
map size per kind, too: one entry per keyframe and heading.

Embeddings are cached per model (bench/sequence_data.py, shared with bench_sequence).

    .venv/bin/python bench/bench_headings.py [--towns 0,1,2,100] [--model FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from sequence_data import build_map, map_arrays, query_stream

from liploc_ros.model import Embedder
from liploc_ros.model.model_file import load_model_file

KINDS = {"forward": (0.0,), "rear": (180.0,), "both": (0.0, 180.0)}
DRIVES = (1, 2, 3, 4)
THRESHOLD_M = 20.0
GOALS = {1: 0.60, 2: 0.50, 3: 0.50, 4: 0.50}


def recall_at_1(db, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Recall@1 at THRESHOLD_M and its chance level."""
    idx = db.search(queries, 1).indices[:, 0]
    err = np.hypot(*(db.positions[idx, :2] - truth[:, :2, 3]).T)
    keyframe_xy = np.unique(db.positions[:, :2], axis=0)
    gap = keyframe_xy[None, :, :] - truth[:, None, :2, 3]
    near = np.hypot(gap[..., 0], gap[..., 1])
    chance = float(np.mean((near <= THRESHOLD_M).mean(axis=1)))
    return float(np.mean(err <= THRESHOLD_M)), chance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towns", default="0,1,2,100")
    ap.add_argument("--model", default="models/liploc_demo.safetensors")
    ap.add_argument("--cache", type=Path, default=Path("out/bench_cache"))
    ap.add_argument("--out", type=Path, default=Path("out/bench_headings.json"))
    args = ap.parse_args()
    embedder = Embedder(load_model_file(args.model), device="cpu", precision="fp32")
    print(f"model {args.model} (fingerprint {embedder.fingerprint}); Recall@1 at 20 m, "
          "map from drive 0")  # fmt: skip
    drives = " ".join(f"{'drive' + str(d):>7}" for d in DRIVES)
    print(f"{'town':>4} {'map':<8} {'entries':>7} {drives}   chance")
    rows = []
    for seed in (int(t) for t in args.towns.split(",")):
        streams = {d: query_stream(embedder, args.cache, seed, d) for d in DRIVES}
        for kind, headings in KINDS.items():
            part = map_arrays(embedder, args.cache, seed, headings=headings)
            db = build_map(embedder, [part], [f"synthetic/seed{seed}/t0"])
            rec = {d: recall_at_1(db, streams[d].embeddings, streams[d].truth) for d in DRIVES}
            rows.append({"town": seed, "map": kind, "headings": headings, "entries": len(db),
                         **{f"drive{d}": rec[d][0] for d in DRIVES},
                         **{f"chance{d}": rec[d][1] for d in DRIVES}})  # fmt: skip
            print(f"{seed:>4} {kind:<8} {len(db):>7} "
                  + " ".join(f"{rec[d][0]:>7.3f}" for d in DRIVES)
                  + "   " + "/".join(f"{rec[d][1]:.2f}" for d in DRIVES), flush=True)  # fmt: skip
    for kind in KINDS:
        mine = [r for r in rows if r["map"] == kind]
        means = {d: float(np.mean([r[f"drive{d}"] for r in mine])) for d in DRIVES}
        print(f"mean {kind:<8}         " + " ".join(f"{means[d]:>7.3f}" for d in DRIVES))
    both = [r for r in rows if r["map"] == "both"]
    missed = [f"town {r['town']} drive {d}: {r[f'drive{d}']:.3f} < {g}"
              for r in both for d, g in GOALS.items() if r[f"drive{d}"] < g]  # fmt: skip
    print("goals (both crops): " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
