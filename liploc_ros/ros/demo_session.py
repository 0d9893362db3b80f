"""The live part of ``liploc demo``: localizer_node as a child process, a bag played into it,
its poses and diagnostics collected.

Everything runs on one ROS domain chosen by the caller with discovery limited to this host,
so that two demos (or a demo and the tests) on one machine do not hear each other. The child
process is always ended: SIGINT first, then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from visualization_msgs.msg import Marker, MarkerArray

from liploc_ros.errors import LiplocError
from liploc_ros.evaluation.demo_figures import Received, stamp_key
from liploc_ros.ros.bag_player import BagPlayer, PlayOptions
from liploc_ros.ros.conversions import stamp_to_seconds
from liploc_ros.ros.localizer_messages import MATCH_NS

__all__ = ["LocalizerProcess", "SessionResult", "play_into_localizer", "ros_environment"]

NODE = "localizer_node"


def ros_environment(domain_id: int) -> dict[str, str]:
    """This process's environment with its own ROS domain, discovery on this host only."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _ros_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


class LocalizerProcess:
    """``python -m liploc_ros.ros.localizer_node --ros-args ...``; output to ``log_path``."""

    def __init__(
        self,
        params: Mapping[str, Any],
        log_path: Path,
        env: Mapping[str, str],
        *,
        params_file: Path | None = None,
    ) -> None:
        args = [sys.executable, "-m", "liploc_ros.ros.localizer_node", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for name, value in params.items():
            args += ["-p", f"{name}:={_ros_value(value)}"]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        """The node's resident set (MB) from /proc; NaN where there is none (not Linux)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")),
                   None)  # fmt: skip
        return float(kib) / 1024.0 if kib is not None else float("nan")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, then SIGKILL if it has not ended within ``timeout`` s; the exit code."""
        try:
            if self.running:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> LocalizerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SessionResult:
    """What came back from the node while the bag played."""

    #: the published fixes (~/pose)
    poses: list[Received] = field(default_factory=list)
    #: the best match of every localized frame, fix or not (the first of the top-k spheres
    #: on ~/markers: in sequence mode the ARROW is the filter's estimate, not the match)
    matches: list[Received] = field(default_factory=list)
    #: stamps of the images played, in order
    played_stamps: list[float] = field(default_factory=list)
    #: the node's last diagnostics values
    diagnostics: dict[str, str] = field(default_factory=dict)
    play_seconds: float = 0.0
    #: the node's own time per frame (decode, localize, publish), mean over the session (ms)
    processing_ms: float = float("nan")
    #: the node's resident set (MB) when the playback started and once it had drained
    rss_start_mb: float = float("nan")
    rss_end_mb: float = float("nan")

    @property
    def frames_localized(self) -> int:
        return int(self.diagnostics.get("total_frames", len(self.matches)))


class _Collector:
    def __init__(self, node: Node, namespace: str) -> None:
        self.lock = threading.Lock()
        self.poses: list[tuple[float, Any, float]] = []
        self.matches: list[tuple[float, Any, float]] = []
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_count = 0
        #: (frames, mean processing ms) of every diagnostics period with frames
        self.processing: list[tuple[int, float]] = []
        prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(
            PoseWithCovarianceStamped, f"{prefix}/{NODE}/pose", self._on_pose, qos
        )
        node.create_subscription(MarkerArray, f"{prefix}/{NODE}/markers", self._on_markers, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        received = time.monotonic()
        p = msg.pose.pose.position
        with self.lock:
            self.poses.append((stamp_to_seconds(msg.header.stamp), (p.x, p.y, p.z), received))

    def _on_markers(self, msg: MarkerArray) -> None:
        received = time.monotonic()
        for marker in msg.markers:
            if marker.ns == MATCH_NS and marker.type == Marker.SPHERE_LIST and marker.points:
                p = marker.points[0]  # the top-k entries, best first
                stamp = stamp_to_seconds(marker.header.stamp)
                with self.lock:
                    self.matches.append((stamp, (p.x, p.y, p.z), received))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{NODE}:"):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics = values
                    self.diagnostics_count += 1
                    try:
                        frames = int(values.get("frames", "0"))
                        if frames:
                            self.processing.append((frames, float(values["processing_mean_ms"])))
                    except (KeyError, ValueError):
                        pass

    def pending(self, topic: str) -> int | None:
        """Frames received by the node but neither processed nor dropped (None: unknown)."""
        with self.lock:
            d = self.diagnostics
            try:
                return (
                    int(d[f"{topic}: received"])
                    - int(d[f"{topic}: processed"])
                    - int(d[f"{topic}: dropped"])
                )
            except (KeyError, ValueError):
                return None


def play_into_localizer(
    bag: Path,
    image_topic: str,
    process: LocalizerProcess,
    *,
    rate: float = 1.0,
    clock: bool = True,
    namespace: str = "",
    odometry_topic: str | None = None,
    startup_timeout: float = 180.0,
    drain_timeout: float = 30.0,
    progress: Callable[[str], None] = print,
) -> SessionResult:
    """Wait for the node to subscribe, play ``image_topic`` (and ``odometry_topic``) of
    ``bag`` at ``rate``, collect every pose until the node has handled the last frame
    (bounded waits throughout)."""
    import numpy as np

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = Node("liploc_demo", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(executor, stop), daemon=True)
    spinner.start()
    result = SessionResult()
    try:
        collector = _Collector(node, namespace)
        published: dict[int, float] = {}

        topics = (image_topic,) + ((odometry_topic,) if odometry_topic else ())
        options = PlayOptions(rate=rate, topics=topics, clock=clock)
        with BagPlayer(node, bag, options) as player:
            msgtype = next(c.msgtype for c in player.reader.connections if c.topic == image_topic)

            def on_publish(topic: str, t: int, raw: bytes) -> None:
                if topic != image_topic:
                    return
                msg: Any = player.reader.deserialize(raw, msgtype)
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                published[stamp_key(stamp)] = time.monotonic()
                result.played_stamps.append(stamp)

            player.on_publish = on_publish
            _wait_for_node(player, topics, process, startup_timeout)
            count = sum(c.msgcount for c in player.reader.connections if c.topic == image_topic)
            progress(
                f"playing {count} frames of {image_topic} at rate {rate:g} "
                f"({count / 10 / rate:.0f} s at 10 Hz)"
            )
            result.rss_start_mb = process.rss_mb()
            stats = player.play()
            result.play_seconds = stats.seconds
        _drain(collector, image_topic, process, drain_timeout)
        result.rss_end_mb = process.rss_mb()
        with collector.lock:
            result.diagnostics = dict(collector.diagnostics)
            frames = sum(n for n, _ in collector.processing)
            if frames:
                result.processing_ms = sum(n * ms for n, ms in collector.processing) / frames
            for source, target in ((collector.poses, result.poses),
                                   (collector.matches, result.matches)):  # fmt: skip
                for stamp, xyz, received in source:
                    sent = published.get(stamp_key(stamp))
                    latency = None if sent is None else received - sent
                    target.append(Received(stamp, np.array(xyz), latency))
        return result
    finally:
        stop.set()
        spinner.join(5)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _wait_for_node(
    player: BagPlayer, topics: tuple[str, ...], process: LocalizerProcess, timeout: float
) -> None:
    """Until the node subscribes to every topic played; LiplocError if it exits or is late."""
    deadline = time.monotonic() + timeout
    while not player.wait_for_subscribers(list(topics), 0.5):
        if not process.running:
            raise LiplocError(
                f"localizer_node exited with code {process.proc.returncode} before "
                f"subscribing to {', '.join(topics)}:\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise LiplocError(
                f"localizer_node did not subscribe to {', '.join(topics)} within "
                f"{timeout:.0f} s:\n{process.log_tail()}"
            )


def _spin(executor: SingleThreadedExecutor, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            executor.spin_once(timeout_sec=0.05)
        except Exception:  # context shut down under us: the session is ending
            return


def _drain(collector: _Collector, topic: str, process: LocalizerProcess, timeout: float) -> None:
    """Wait until the node's diagnostics (after the last frame) show no frame pending."""
    deadline = time.monotonic() + timeout
    seen = collector.diagnostics_count
    while time.monotonic() < deadline and process.running:
        time.sleep(0.2)
        with collector.lock:
            fresh = collector.diagnostics_count >= seen + 2  # a full period after the end
        if fresh and collector.pending(topic) == 0:
            return
