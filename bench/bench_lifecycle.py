"""localizer_node's lifecycle transitions: how long configure, activate, deactivate and
cleanup take, through the real ``/localizer_node/change_state`` service.

The node runs as its own process (``autostart: false``) on a private ROS domain with the
demo model (``models/liploc_demo.safetensors``) where it is installed, else a small untrained
model made here (``--model`` picks another file), and a map of ``--entries`` random
embeddings made for that model (its fingerprint: the cost of loading and warming up, not
retrieval quality, is measured). Each figure is the service's round trip seen by the caller;
configure also by the node's own log line. Activate / deactivate are repeated ``--cycles``
times (median and max). Issue 24's goals: configure < 5 s, activate / deactivate < 100 ms.

    .venv/bin/python bench/bench_lifecycle.py [--model FILE] [--entries 2000] [--cycles 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_route
from liploc_ros.model import create_model, load_model, model_preset, save_model
from liploc_ros.model.backends.machine import flags_line
from liploc_ros.preprocess import CameraConfig, PreprocessConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "liploc_demo.safetensors"


def make_files(folder: Path, model: Path | None, entries: int) -> tuple[Path, Path, str]:
    if model is None:
        if DEMO.is_file():
            model = DEMO
        else:
            model = folder / "tiny.safetensors"
            pre = PreprocessConfig(camera=CameraConfig(image_size=64), lidar_image_size=64)
            save_model(model, create_model(model_preset("liploc-tiny"), pre))
    loaded = load_model(model)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((entries, loaded.embed_dim)).astype(np.float32)
    positions, orientations = synthetic_route(entries, seed=0)
    name, lidar = loaded.model_config.name, loaded.preprocess.lidar
    info = synthetic_info(loaded.embed_dim, fingerprint=loaded.fingerprint, model_name=name,
                          lidar=lidar)  # fmt: skip
    database = MapDatabase(emb, positions, orientations, np.arange(entries) * 0.1, info)
    map_path = database.save(folder / "bench.lmap")
    return model, map_path, f"{model.name} ({loaded.model_config.name})"


def measure(model: Path, map_path: Path, cycles: int, folder: Path) -> dict:
    """The transitions' round trips (s) on a node process; its own configure figure."""
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.node import Node

    env = dict(os.environ, ROS_DOMAIN_ID=str(231), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RCUTILS_LOGGING_BUFFERED_STREAM="0")  # fmt: skip
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    log_path = folder / "node.log"
    params = {"model": model, "map_path": map_path, "device": "cpu", "autostart": "false",
              "image_topics": "[/bench/image_raw]"}  # fmt: skip
    argv = [sys.executable, "-m", "liploc_ros.ros.localizer_node", "--ros-args"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={value}"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("bench_lifecycle")
    client = node.create_client(ChangeState, "/localizer_node/change_state")

    def transition(tid: int) -> float:
        t0 = time.perf_counter()
        future = client.call_async(ChangeState.Request(transition=Transition(id=tid)))
        rclpy.spin_until_future_complete(node, future, timeout_sec=300)
        seconds = time.perf_counter() - t0
        if not (future.done() and future.result().success):
            raise SystemExit(f"transition {tid} failed:\n{log_path.read_text()}")
        return seconds

    try:
        if not client.wait_for_service(timeout_sec=120):
            raise SystemExit(f"no change_state service:\n{log_path.read_text()}")
        out: dict = {"configure": transition(Transition.TRANSITION_CONFIGURE)}
        out["activate"], out["deactivate"] = [], []
        for _ in range(cycles):
            out["activate"].append(transition(Transition.TRANSITION_ACTIVATE))
            out["deactivate"].append(transition(Transition.TRANSITION_DEACTIVATE))
        out["cleanup"] = transition(Transition.TRANSITION_CLEANUP)
        out["again"] = transition(Transition.TRANSITION_CONFIGURE)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.terminate()
        proc.wait(30)
    out["own"] = re.findall(r"configured in ([0-9.]+) s", log_path.read_text())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: the demo model)")
    parser.add_argument("--entries", type=int, default=2000, help="map entries")
    parser.add_argument("--cycles", type=int, default=5, help="activate/deactivate cycles")
    args = parser.parse_args()
    print(flags_line())
    with tempfile.TemporaryDirectory() as tmp:
        model, map_path, label = make_files(Path(tmp), args.model, args.entries)
        got = measure(model, map_path, args.cycles, Path(tmp))

    def ms(values: list[float]) -> str:
        return f"median {1e3 * statistics.median(values):.1f} ms, max {1e3 * max(values):.1f} ms"

    own = got["own"][0] if got["own"] else "?"
    print(f"model {label}, map {args.entries} entries (random, the model's fingerprint)")
    print(f"configure: {got['configure']:.2f} s (node's own figure: {own} s); again after "
          f"cleanup: {got['again']:.2f} s")  # fmt: skip
    print(f"activate ({args.cycles}x): {ms(got['activate'])}")
    print(f"deactivate ({args.cycles}x): {ms(got['deactivate'])}")
    print(f"cleanup: {1e3 * got['cleanup']:.1f} ms")


if __name__ == "__main__":
    main()
