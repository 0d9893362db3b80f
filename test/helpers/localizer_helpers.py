"""Shared pieces of the node tests: a model file and its map, a node (the localizer's, or
the map builder's) as a real process on a ROS domain of the test's, and a test-side rclpy
node that publishes camera frames and collects the outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from calibration_helpers import trusting_calibration

from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_route
from liploc_ros.model import LoadedModel, create_model, load_model, model_preset, save_model
from liploc_ros.preprocess import CameraConfig, PreprocessConfig

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 90.0  # the node imports torch, loads the model and the map, warms up
IMAGE_SHAPE = (120, 400, 3)


def ros_environment(domain_id: int) -> dict[str, str]:
    """This process's environment on its own ROS domain, discovery on this host only."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"  # log lines reach the file at once
    return env


def ros_domain(domain_id: int) -> Iterator[dict[str, str]]:
    """Body of a module fixture: this process on ``domain_id`` (localhost only) while the
    module's tests run, the environment restored after; yields the child environment."""
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    env = ros_environment(domain_id)
    os.environ.update({k: env[k] for k in saved})
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_model_file(path: Path, *, size: int = 32, preset: str = "liploc-tiny", seed: int = 0):
    """An untrained model saved to ``path``; returns the LoadedModel read back from it."""
    torch.manual_seed(seed)
    pre = PreprocessConfig(camera=CameraConfig(image_size=size), lidar_image_size=size)
    save_model(path, create_model(model_preset(preset), pre))
    return load_model(path)


def make_map_file(
    path: Path, loaded: LoadedModel, n: int = 40, *, seed: int = 0, calibrated: bool = True
) -> Path:
    """A map for ``loaded`` (its fingerprint) with random embeddings along a short route;
    ``calibrated``: with a hand-made calibration that trusts its top match (the plumbing
    tests' fixes, see :mod:`calibration_helpers`), else none (conservative settings)."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, loaded.embed_dim)).astype(np.float32)
    # 0.2 m apart: the whole route (8 m for 40 entries) is one place within the localizer's
    # agree_radius_m, so that every frame of an untrained model gets its fix
    positions, orientations = synthetic_route(n, seed=seed, step=0.2)
    info = synthetic_info(
        loaded.embed_dim,
        fingerprint=loaded.fingerprint,
        model_name=loaded.model_config.name,
        lidar=loaded.preprocess.lidar,
    )
    database = MapDatabase(emb, positions, orientations, np.arange(n) * 0.1, info)
    if calibrated:
        database.set_calibration(trusting_calibration(loaded.fingerprint, n))
    return database.save(path)


def random_image(seed: int, shape: tuple[int, int, int] = IMAGE_SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


class NodeProcess:
    """``python -m MODULE --ros-args ...`` in a subprocess, its output in a log file."""

    def __init__(
        self,
        tmp_path: Path,
        env: dict,
        params: dict,
        *,
        module: str = "liploc_ros.ros.localizer_node",
        params_file: Path | None = None,
        extra: tuple[str, ...] = (),
    ):
        args = [sys.executable, "-m", module, "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        args += ros_parameters(params) + list(extra)
        self.log_path = tmp_path / f"node-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log}")

    def rss_kib(self) -> int:
        """Resident memory of the node process (VmRSS, KiB)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node did not stop within {timeout} s:\n{self.log}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def ros_value(value: Any) -> str:
    """A Python value as a ``-p name:=value`` string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    if isinstance(value, str) and value.startswith("/"):
        return value
    return str(value)


def ros_parameters(params: dict) -> list[str]:
    """``-p name:=value`` for each parameter, as a node's command line takes them."""
    return [arg for name, value in params.items() for arg in ("-p", f"{name}:={ros_value(value)}")]


def main_args(executable: str, params: dict) -> list[str]:
    """The argv a node's ``main`` gets from ``ros2 run liploc_ros EXECUTABLE -p ...``."""
    return [executable, "--ros-args", *ros_parameters(params)]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 5.0,
    what: str = "the condition",
    node: NodeProcess | None = None,
) -> None:
    """Polls ``predicate`` until it is true; an AssertionError after ``timeout`` s, or as soon
    as ``node`` (a node process the test waits on) has exited, with its log."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if node is not None:
            node.assert_running()
        if time.monotonic() > deadline:
            log = f":\n{node.log}" if node is not None else ""
            raise AssertionError(f"timed out waiting for {what}{log}")
        time.sleep(0.05)


@dataclass
class Received:
    """A message and when it arrived (time.time(), the clock the node stamps latency by)."""

    msg: Any
    wall: float


@dataclass
class Collector:
    poses: list[Received] = field(default_factory=list)
    diagnostics: list[Received] = field(default_factory=list)
    markers: list[Received] = field(default_factory=list)
    initialposes: list[Received] = field(default_factory=list)


def diagnostics_windows(graph: GraphSide) -> list[dict[str, str]]:
    """The key values of every localizer status the graph side received, oldest first."""
    with graph.lock:
        return [
            {kv.key: kv.value for kv in status.values}
            for received in graph.got.diagnostics
            for status in received.msg.status
            if status.name.startswith("localizer_node:")
        ]


def measure_processing_ms(
    graph: GraphSide,
    node: NodeProcess,
    send: Callable[[int], None],
    *,
    frames: int = 12,
    rate_hz: float = 4.0,
    busy_s: float = 0.0,
) -> float:
    """The node's own processing time per frame (ms, mean), read from its /diagnostics
    after ``frames`` calls of ``send(i)`` at ``rate_hz`` (slow enough for any node: none is
    dropped). A load test sizes its camera rate by it, so that the overload is real on a
    slow and on a fast machine alike. ``graph`` must collect /diagnostics.

    With ``busy_s``, frames then come for that long at twice the rate so measured, and the
    smaller of the two means is returned: a node that idles between slow frames may run
    each one twice as slowly as when it is kept busy (CPU clocks, caches), and a load sized
    by the idle figure would be no overload at all."""
    idle = _probe(graph, node, send, frames, rate_hz)
    if busy_s <= 0.0:
        return idle
    busy_hz = 2.0 * 1000.0 / idle
    busy = _probe(graph, node, send, max(frames, round(busy_s * busy_hz)), busy_hz)
    return min(idle, busy)


def _probe(graph: GraphSide, node: NodeProcess, send: Callable[[int], None], frames: int,
           rate_hz: float) -> float:  # fmt: skip
    """Mean processing time (ms) over the diagnostics windows of ``frames`` sent frames."""
    before = len(diagnostics_windows(graph))
    start = time.monotonic()
    for i in range(frames):
        send(i)
        time.sleep(max(0.0, start + (i + 1) / rate_hz - time.monotonic()))
    counted: list[tuple[int, float]] = []

    def probed() -> bool:
        counted[:] = [
            (int(w["frames"]), float(w["processing_mean_ms"]))
            for w in diagnostics_windows(graph)[before:]
            if int(w["frames"])
        ]
        return sum(n for n, _ in counted) >= min(frames // 2, 12)

    wait_until(probed, 30.0, "diagnostics with the probe frames' processing time", node)
    return sum(n * ms for n, ms in counted) / sum(n for n, _ in counted)


def node_diagnostics(graph: GraphSide) -> dict[str, str]:
    """The key values of the localizer's newest diagnostic status the graph side received."""
    with graph.lock:
        for received in reversed(graph.got.diagnostics):
            for status in received.msg.status:
                if status.name.startswith("localizer_node:"):
                    return {kv.key: kv.value for kv in status.values}
    return {}


class GraphSide:
    """The test's side: an rclpy node on its own context, spun by a background thread."""

    def __init__(self, name: str = "liploc_test_side"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.got = Collector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def collect(self, msg_type: type, topic: str, into: list, qos: Any = 10) -> Any:
        def on_msg(msg: Any) -> None:
            with self.lock:
                into.append(Received(msg, time.time()))

        return self.node.create_subscription(msg_type, topic, on_msg, qos)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
