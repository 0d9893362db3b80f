"""localizer_node: camera frames in, poses in the LiDAR map out (LIP-Loc).

- Subscribes each of ``image_topics`` as sensor_msgs/Image or CompressedImage, whichever its
  publisher offers (learned from the ROS graph, retried every ``discovery_period`` until the
  topic appears), best effort, depth 1. Callbacks only store the message in its camera's
  newest-frame slot (:class:`~liploc_ros.ros.frame_slots.LatestFrameSlots`); one worker
  thread decodes and localizes the newest frame of the camera that has waited longest. A
  slow model therefore drops frames instead of queueing them, and no camera starves.
- Publishes, stamped with the image's stamp in ``map_frame``: ``~/pose``
  (PoseWithCovarianceStamped, for robot_localization's poseN), ``~/odom`` (Odometry,
  ``publish_odom``), ``~/markers`` (the map's route once, latched, and the current match),
  ``/diagnostics`` (rate, latency, score, fix ratio, drops) every ``diagnostics_period``.
  The pose is base_frame's: ``T_map_base = T_map_lidar @ inv(T_base_lidar)``
  (:mod:`~liploc_ros.ros.base_pose`). Frames without a fix publish no pose.
- ``publish_tf``: broadcasts map -> odom from each fix and tf's odom -> base (tf2_ros needed).
- ``publish_initialpose``: the first fix with confidence >= ``initialpose_min_confidence``
  goes to ``initialpose_topic`` (nav2 AMCL); the ``~/publish_initialpose`` service
  (std_srvs/Trigger) sends the latest such fix again on request.

Model and map are loaded once, then one warm-up frame; a missing, corrupt or mismatched
model or map, or a bad parameter, is a FATAL log line and exit code 1. A bad frame
(unsupported encoding, zero size, wrong step, corrupt JPEG) is a warning, throttled per
cause, and the node carries on.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from functools import partial
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from liploc_ros.datasets.interpolation import invert_transform
from liploc_ros.errors import LiplocError
from liploc_ros.ros import conversions as conv
from liploc_ros.ros import localizer_messages as msgs
from liploc_ros.ros.base_pose import BasePose, base_pose
from liploc_ros.ros.frame_slots import LatestFrameSlots, TakenFrame
from liploc_ros.ros.image_input import BadImageError, decode_image
from liploc_ros.ros.localizer_params import DESCRIPTIONS, LocalizerNodeConfig
from liploc_ros.ros.localizer_stats import LocalizerStats
from liploc_ros.ros.map_odom_tf import MapToOdom
from liploc_ros.ros.params import declare_config, read_config
from liploc_ros.ros.pose_sources import extrinsic_matrix
from liploc_ros.ros.spin import spin_until_signal
from liploc_ros.ros.throttle import WarningThrottle

try:  # a minimal ROS install may lack std_srvs: then there is no ~/publish_initialpose
    from std_srvs.srv import Trigger
except ImportError:
    Trigger = None

__all__ = ["IMAGE_TYPES", "NODE_NAME", "LocalizerNode", "main"]

NODE_NAME = "localizer_node"
#: ROS type name -> message class of the camera topics
IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}
#: cameras: newest frame only, never a queue
CAMERA_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
)
#: late joiners (RViz, AMCL started after the first fix) get the last message
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class LocalizerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_config(self, LocalizerNodeConfig, DESCRIPTIONS)
        self.cfg = cfg = read_config(self, LocalizerNodeConfig)
        log = self.get_logger()
        self.localizer = _load_localizer(cfg, log)
        self.database = self.localizer.database
        self.frame_id = cfg.map_frame or self.localizer.frame_id
        self.T_base_lidar = extrinsic_matrix(cfg.base_to_lidar)
        self.T_lidar_base = invert_transform(self.T_base_lidar)
        self.stats = LocalizerStats()
        self.throttle = WarningThrottle(log.warning, cfg.warn_period)  # frames, tf
        self._graph_warnings = WarningThrottle(log.warning, 30.0)  # image topics of a bad type
        self._waiting = WarningThrottle(log.info, 30.0)  # image topics without publisher

        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", 10)
        self.odom_pub = self.create_publisher(Odometry, "~/odom", 10) if cfg.publish_odom else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.initialpose_pub = self.create_publisher(
            PoseWithCovarianceStamped, cfg.initialpose_topic, LATCHED_QOS
        )
        self._initialpose_sent = False
        self._confident: tuple[BasePose, Any, float] | None = None
        if Trigger is not None:
            self.create_service(Trigger, "~/publish_initialpose", self._on_initialpose_request)
        self.match_pub = None
        if cfg.publish_markers:
            # two latched publishers on one topic: a late RViz gets the route and the last match
            route_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
            self.match_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
            route = self.database.poses @ self.T_lidar_base
            route_pub.publish(
                msgs.route_markers(route[:, :3, 3], self.database.source_index, self.frame_id)
            )
            self._route_pub = route_pub
        self._tf = None
        if cfg.publish_tf:
            frames = (self.frame_id, cfg.odom_frame, cfg.base_frame)
            self._tf = MapToOdom.create(self, frames, cfg.transform_tolerance, self.throttle.warn)
            if self._tf is None:
                log.warning(
                    "publish_tf is unavailable: tf2_ros is not installed (no map -> odom "
                    "broadcast; poses are still published)"
                )

        self.topics = [self.resolve_topic_name(t) for t in cfg.image_topics]
        self.slots: LatestFrameSlots[Any] = LatestFrameSlots(self.topics)
        self._subscribed: dict[str, str] = {}
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="liploc-localizer", daemon=True)
        self._worker.start()
        # steady clock: with use_sim_time and a paused (or not yet started) bag, ROS time
        # stands still, but topics must still be discovered and health still reported
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._discovery = self.create_timer(cfg.discovery_period, self._discover, clock=steady)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics, clock=steady)
        self._discover()
        log.info(
            f"ready: {len(self.database)} map entries in '{self.frame_id}', publishing "
            f"{self.resolve_topic_name('~/pose')} for '{cfg.base_frame}'; cameras: "
            f"{', '.join(self.topics)}"
        )

    # -- camera topics --------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe the image topics whose type the graph now tells."""
        graph = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._subscribed:
                continue
            types = graph.get(topic, [])
            kind = next((t for t in types if t in IMAGE_TYPES), None)
            if kind is None:
                if types:
                    self._graph_warnings.warn(
                        topic,
                        f"{topic} has type {', '.join(types)}, not sensor_msgs/msg/Image or "
                        "CompressedImage: not subscribed",
                    )
                else:
                    self._waiting.warn(topic, f"waiting for a publisher on {topic}")
                continue
            self.create_subscription(
                IMAGE_TYPES[kind], topic, partial(self._on_image, topic), CAMERA_QOS
            )
            self._subscribed[topic] = kind
            self.get_logger().info(f"subscribed to {topic} ({kind}, best effort, depth 1)")
        if len(self._subscribed) == len(self.topics):
            self._discovery.cancel()

    def _on_image(self, topic: str, msg: Any) -> None:
        self.slots.put(topic, msg)

    # -- the worker -----------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            taken = self.slots.take(timeout=0.25)
            if taken is None:
                continue
            try:
                self._process(taken)
            except Exception:  # a bug must not kill the worker silently: say it, carry on
                self.throttle.warn("internal error", f"frame failed:\n{traceback.format_exc()}")

    def _process(self, taken: TakenFrame[Any]) -> None:
        t0 = time.monotonic()
        msg = taken.item
        stamp = conv.stamp_to_seconds(msg.header.stamp)
        try:
            rgb = decode_image(msg)
        except BadImageError as err:
            self.stats.record_bad()
            self.throttle.warn(err.cause, f"{taken.camera}: frame at {stamp:.3f} s dropped: {err}")
            return
        decode_ms = 1e3 * (time.monotonic() - t0)
        est = self.localizer.localize(rgb, stamp, timings_ms={"decode": decode_ms})
        fix = None
        if est.ok:
            fix = base_pose(est, self.database, self.T_base_lidar, self.cfg.localizer)
            self._publish_fix(fix, msg.header.stamp, est.confidence)
        if self.match_pub is not None and est.best_pose is not None:
            T = fix.matrix if fix is not None else est.best_pose @ self.T_lidar_base
            valid = est.indices[est.indices >= 0][: self.cfg.localizer.top_k]
            matches = (self.database.poses_at(valid) @ self.T_lidar_base)[:, :3, 3]
            self.match_pub.publish(
                msgs.match_markers(T, matches, est.ok, msg.header.stamp, self.frame_id)
            )
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.record(
            ok=est.ok,
            score=est.score,
            confidence=est.confidence,
            latency_ms=1e3 * (now - stamp),
            processing_ms=1e3 * (time.monotonic() - t0),
        )

    def _publish_fix(self, fix: BasePose, stamp: Any, confidence: float) -> None:
        cfg = self.cfg
        self.pose_pub.publish(msgs.pose_message(fix.matrix, fix.covariance, stamp, self.frame_id))
        if self.odom_pub is not None:
            self.odom_pub.publish(
                msgs.odometry_message(
                    fix.matrix, fix.covariance, stamp, self.frame_id, cfg.base_frame
                )
            )
        if self._tf is not None:
            self._tf.broadcast(fix.matrix, stamp)
        if confidence >= cfg.initialpose_min_confidence:
            self._confident = (fix, stamp, confidence)
            if cfg.publish_initialpose and not self._initialpose_sent:
                self._initialpose_sent = True
                self._send_initialpose()

    # -- initial pose ---------------------------------------------------------------------
    def _send_initialpose(self) -> str:
        fix, stamp, confidence = self._confident
        self.initialpose_pub.publish(
            msgs.pose_message(fix.matrix, fix.covariance, stamp, self.frame_id)
        )
        x, y, t = fix.matrix[0, 3], fix.matrix[1, 3], conv.stamp_to_seconds(stamp)
        text = (
            f"initial pose sent on {self.initialpose_pub.topic_name}: x {x:.2f} y {y:.2f} in "
            f"'{self.frame_id}' (confidence {confidence:.2f}, stamp {t:.3f} s)"
        )
        self.get_logger().info(text)
        return text

    def _on_initialpose_request(self, request: Any, response: Any) -> Any:
        if self._confident is None:
            response.success = False
            response.message = (
                "no fix with confidence >= initialpose_min_confidence "
                f"({self.cfg.initialpose_min_confidence}) yet"
            )
        else:
            response.success, response.message = True, self._send_initialpose()
        return response

    # -- diagnostics and running ----------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        loaded = self.localizer.embedder.loaded
        waiting = tuple(t for t in self.topics if t not in self._subscribed)
        self.diag_pub.publish(
            msgs.diagnostics_message(
                f"{self.get_name()}: LIP-Loc localization",
                f"{loaded.model_config.name} {loaded.fingerprint}",
                self.get_clock().now().to_msg(),
                self.stats.window(),
                self.slots.counts(),
                self.throttle.counts(),
                waiting_for=waiting,
            )
        )

    def run(self) -> int:
        """Spin until SIGINT / SIGTERM, then stop the worker."""
        try:
            # callbacks only fill the frame slots: the worker thread does the work
            spin_until_signal(self, threads=1)
        finally:
            self.close()
        return 0

    def close(self) -> None:
        self._stop.set()
        self.slots.close()
        self._worker.join(timeout=10.0)


def _load_localizer(cfg: LocalizerNodeConfig, log: Any) -> Any:
    """Model, map, their match, and one warm-up frame; LiplocError for anything wrong."""
    import torch  # after the parameters are checked: importing torch takes seconds

    from liploc_ros.localization import Localizer
    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.mapping.model_file import load_model_file
    from liploc_ros.model import Embedder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    database = MapDatabase.load(cfg.map_path)
    loaded = load_model_file(cfg.model)
    embedder = Embedder(loaded, device=cfg.device, precision=cfg.precision, batch_size=1)
    localizer = Localizer(embedder, database, cfg.localizer)
    t0 = time.perf_counter()
    localizer.warm_up()
    log.info(
        f"model {loaded.model_config.name} ({loaded.fingerprint}) on {embedder.device} "
        f"{embedder.precision}, map {cfg.map_path} ({len(database)} entries); warm-up frame "
        f"{1e3 * (time.perf_counter() - t0):.0f} ms"
    )
    return localizer


def main(args: list[str] | None = None) -> int:
    """Console script ``localizer_node``; the exit code (0, 1 error, 2 bad arguments)."""
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as err:  # rcl's own error type: bad --ros-args
        print(f"{NODE_NAME}: cannot start: {err}", file=sys.stderr)
        return 2
    node = None
    try:
        node = LocalizerNode()
        return node.run()
    except LiplocError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except KeyboardInterrupt:  # Ctrl-C while loading
        return 130
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
