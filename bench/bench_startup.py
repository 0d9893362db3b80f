"""Start-up cost of ``backend: auto``: seconds from a fresh process to the first embedded
camera frame (what a localizer node's warm-up pays), against today's default (torch).

Three child processes per model, each timed from before the model is built to after its
first KITTI-sized frame is embedded at batch 1 (imports excluded, as they are the same):

- torch: the previous default (``backend torch``, precision auto);
- auto, first use: an empty cache folder, so it converts, measures and verifies;
- auto, cached: the same cache folder again (only loads the chosen runtime).

Issue 22's goals: first use at most 20 s more than torch, cached at most 2 s more.

    .venv/bin/python bench/bench_startup.py [--models liploc-vit-s16:224] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from liploc_ros.model.backends.machine import flags_line

_CHILD = r"""
import json, sys, time
import numpy as np, torch
from liploc_ros.model import Embedder, create_model, model_preset, wrap_model
from liploc_ros.preprocess import CameraConfig, PreprocessConfig
name, size, backend, cache, threads = sys.argv[1:6]
if int(threads):
    torch.set_num_threads(int(threads))
t0 = time.perf_counter()
torch.manual_seed(0)
side = int(size)
pre = PreprocessConfig(camera=CameraConfig(image_size=side), lidar_image_size=side)
loaded = wrap_model(create_model(model_preset(name), pre))
embedder = Embedder(loaded, device="cpu", batch_size=1, backend=backend, cache_dir=cache)
embedder.embed_images([np.zeros((375, 1242, 3), np.uint8)])
print(json.dumps({"seconds": time.perf_counter() - t0, "describe": embedder.describe()}))
"""


def run(spec: str, backend: str, cache: str, threads: int) -> dict:
    name, _, size = spec.partition(":")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, name, size or "224", backend, cache, str(threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["liploc-vit-s16:224"], help="PRESET:SIZE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    print(flags_line())
    for spec in args.models:
        with tempfile.TemporaryDirectory(prefix="liploc-startup-") as cache:
            base = run(spec, "torch", cache, args.threads)
            first = run(spec, "auto", cache, args.threads)
            cached = run(spec, "auto", cache, args.threads)
        print(f"\n{spec}: seconds from model build to the first embedded frame")
        print(f"  torch (previous default)  {base['seconds']:6.1f} s")
        for label, got, goal in (("auto, first use", first, 20.0), ("auto, cached", cached, 2.0)):
            extra = got["seconds"] - base["seconds"]
            verdict = "within" if extra <= goal else "OVER"
            print(f"  {label:24s}  {got['seconds']:6.1f} s  (+{extra:.1f} s; goal +{goal:.0f} "
                  f"s: {verdict})")  # fmt: skip
        print(f"  chosen: {cached['describe']}")
    print(f"\n{flags_line()}")


if __name__ == "__main__":
    main()
