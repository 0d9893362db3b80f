"""localizer_node: camera frames in, poses in the LiDAR map out (LIP-Loc).

- Subscribes each of ``image_topics`` as sensor_msgs/Image or CompressedImage, whichever its
  publisher offers (learned from the ROS graph, retried every ``discovery_period`` until the
  topic appears), best effort, depth 1. Callbacks only store the message in its camera's
  newest-frame slot (:class:`~liploc_ros.ros.frame_slots.LatestFrameSlots`); one worker
  thread decodes and localizes the newest frame of the camera that has waited longest. A
  slow model therefore drops frames instead of queueing them, and no camera starves.
- ``mode: sequence`` (default): the frames go through the sequence filter
  (:class:`~liploc_ros.localization.tracking.TrackingLocalizer`, Monte Carlo localization)
  with the odometry at each image's stamp (:mod:`~liploc_ros.ros.odometry_input`: tf
  ``odom_frame -> base_frame`` or ``odom_topic``); a pose is published only while the filter
  tracks, with the filter's covariance. ``~/relocalize`` (std_srvs/Trigger service, and an
  std_msgs/Empty topic) restarts global localization. ``mode: single``: every frame alone.
- Publishes, stamped with the image's stamp in ``map_frame``, base_frame's pose
  (:mod:`~liploc_ros.localization.base_pose`) on ``~/pose`` (PoseWithCovarianceStamped) and
  ``~/odom`` (``publish_odom``); ``~/markers``; ``/diagnostics`` every ``diagnostics_period``
  (rate, latency, fix ratio, drops, the map's calibration: WARN without one; in sequence
  mode the filter's state, mode and off-map probabilities). No fix, no pose.
- ``publish_tf``: broadcasts map -> odom from each fix and tf's odom -> base (tf2_ros needed).
- ``publish_initialpose``: the first fix with confidence >= ``initialpose_min_confidence``
  goes to ``initialpose_topic`` (nav2 AMCL); the ``~/publish_initialpose`` service
  (std_srvs/Trigger) sends the latest such fix again on request.

Model and map are loaded once, then one warm-up frame; a missing, corrupt or mismatched
model or map, or a bad parameter, is a FATAL log line and exit code 1. A bad frame
(unsupported encoding, zero size, wrong step, corrupt JPEG) is a warning, throttled per
cause, and the node carries on. An unexpected error on a frame is logged, counted and
reported as ERROR on /diagnostics, and the worker goes on with the next frame; should the
worker thread ever end while the node runs, the node says so and exits with code 1, so that
a supervisor (launch ``respawn``, systemd) restarts it. Outside ``use_sim_time``, a frame
stamped more than ``max_stamp_offset`` from the node's clock is localized but warned about
and left out of the latency figures; an Image with bytes after ``step x height`` is decoded
from its first ``step x height`` bytes, said once per camera.
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
from rclpy.publisher import Publisher
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Empty
from visualization_msgs.msg import MarkerArray

from liploc_ros.datasets.interpolation import invert_transform
from liploc_ros.errors import LiplocError
from liploc_ros.localization.base_pose import BasePose, base_pose
from liploc_ros.ros import conversions as conv
from liploc_ros.ros import localizer_messages as msgs
from liploc_ros.ros.frame_slots import LatestFrameSlots, TakenFrame
from liploc_ros.ros.image_input import BadImageError, decode_image, trailing_bytes
from liploc_ros.ros.localizer_params import LocalizerNodeConfig
from liploc_ros.ros.localizer_setup import calibration_summary, load_localizer
from liploc_ros.ros.localizer_stats import LocalizerStats, stamp_is_far
from liploc_ros.ros.map_odom_tf import MapToOdom
from liploc_ros.ros.odometry_input import OdometryInput
from liploc_ros.ros.params import declare_config, read_config
from liploc_ros.ros.pose_sources import extrinsic_matrix
from liploc_ros.ros.safe_log import severity_log
from liploc_ros.ros.spin import spin_until_signal
from liploc_ros.ros.tf_listener import SharedTf
from liploc_ros.ros.throttle import WarningThrottle
from liploc_ros.ros.tracking_session import TrackingSession

try:  # a minimal ROS install may lack std_srvs: no ~/publish_initialpose, no ~/relocalize
    # service (the ~/relocalize topic stays)
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
        declare_config(self, LocalizerNodeConfig)
        self.cfg = cfg = read_config(self, LocalizerNodeConfig)
        log = self.get_logger()
        self.localizer, tracker = load_localizer(cfg, log)
        self.database = self.localizer.database
        self.calibration = calibration_summary(self.database)
        self.frame_id = cfg.map_frame or self.localizer.frame_id
        self.T_base_lidar = extrinsic_matrix(cfg.base_to_lidar)
        self.T_lidar_base = invert_transform(self.T_base_lidar)
        self.stats = LocalizerStats()
        # one log function per severity: rclpy refuses two severities from one call site
        warning, info = severity_log(log, "warning"), severity_log(log, "info")
        self.throttle = WarningThrottle(warning, cfg.warn_period)  # frames, tf
        self._graph_warnings = WarningThrottle(warning, 30.0)  # image topics of a bad type
        self._waiting = WarningThrottle(info, 30.0)  # image topics without publisher
        self._errors = WarningThrottle(severity_log(log, "error"), cfg.warn_period)  # bugs
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._padded: set[str] = set()  # cameras told about bytes after step x height

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
        self.match_pub: Publisher | None = None
        self.particles_pub: Publisher | None = None
        if cfg.publish_markers:
            self._create_marker_publishers(particles=tracker is not None)
        self._tf, self._tf_buffer = None, SharedTf(self)  # one tf listener for all users
        if cfg.publish_tf:
            frames = (self.frame_id, cfg.odom_frame, cfg.base_frame)
            tol, warn = cfg.transform_tolerance, self.throttle.warn
            self._tf = MapToOdom.create(self, frames, tol, warn, self._tf_buffer)
            if self._tf is None:
                log.warning("publish_tf is unavailable: tf2_ros is not installed (no map -> "
                            "odom broadcast; poses are still published)")  # fmt: skip

        self.tracking = self._create_tracking(tracker) if tracker is not None else None
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
            f"{', '.join(self.topics)}; {cfg.mode} mode"
            + (f", odometry: {self.tracking.odometry.label}" if self.tracking else "")
        )

    def _create_marker_publishers(self, *, particles: bool) -> None:
        """Latched publishers on ~/markers, one per kind, so that a late RViz gets the route,
        the last match and (sequence mode) the last particles; the route goes out now."""
        route_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
        self.match_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
        route = self.database.poses @ self.T_lidar_base
        route_pub.publish(
            msgs.route_markers(route[:, :3, 3], self.database.source_index, self.frame_id)
        )
        self._route_pub = route_pub
        if particles:
            self.particles_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)

    def _create_tracking(self, tracker: Any) -> TrackingSession:
        """Sequence mode: the odometry source, and ~/relocalize as a service (std_srvs) and
        as an std_msgs/Empty topic (always)."""
        odometry = OdometryInput.create(
            self, self.cfg, self.T_base_lidar, self.throttle.warn, self._tf_buffer
        )
        if Trigger is not None:
            self.create_service(Trigger, "~/relocalize", self._on_relocalize_request)
        self.create_subscription(Empty, "~/relocalize", self._on_relocalize_message, 10)
        return TrackingSession(tracker, odometry)

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
        """Localize frames until closed; a failure on one frame never ends the loop."""
        while not self._stop.is_set():
            self._apply_relocalize()  # also while no frame comes
            taken = self.slots.take(timeout=0.25)
            if taken is None:
                continue
            try:
                self._process(taken)
            except Exception:  # a bug: count it, say it, go on with the next frame
                self._internal_error(taken)

    def _internal_error(self, taken: TakenFrame[Any]) -> None:
        """Count and log (throttled, ERROR) a frame the worker failed on; never raises."""
        try:
            self.stats.record_error()
            self._errors.warn(
                "internal error",
                f"{taken.camera}: frame failed, the worker goes on with the next one:\n"
                f"{traceback.format_exc()}",
            )
        except Exception:  # the report itself failed: the worker must live on
            pass

    def worker_alive(self) -> bool:
        """False once the worker thread has ended (only :meth:`close` should end it)."""
        return self._worker.is_alive()

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
        extra = trailing_bytes(msg)
        if extra and taken.camera not in self._padded:
            self._padded.add(taken.camera)
            self.get_logger().warning(
                f"{taken.camera}: Image data holds {extra} bytes after step x height "
                f"({msg.step} x {msg.height}); frames are decoded from the first "
                f"{msg.step * msg.height} bytes (said once per camera)"
            )
        if self.tracking is None:
            est = self.localizer.localize(rgb, stamp, timings_ms={"decode": decode_ms})
        else:
            self._apply_relocalize()
            est = self.tracking.localize(rgb, stamp, {"decode": decode_ms})
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
        if self.particles_pub is not None and self.tracking and est.best_pose is not None:
            xy = self.tracking.particles_due(self.T_lidar_base)
            if xy is not None:
                z = (est.best_pose @ self.T_lidar_base)[2, 3]
                self.particles_pub.publish(
                    msgs.particle_markers(xy, z, msg.header.stamp, self.frame_id)
                )
        now = self.get_clock().now().nanoseconds * 1e-9
        latency_ms: float | None = 1e3 * (now - stamp)
        if not self._sim_time and stamp_is_far(stamp, now, self.cfg.max_stamp_offset):
            latency_ms = None
            self.throttle.warn(
                "stamp far from the clock",
                f"{taken.camera}: frame stamped {stamp:.3f} s lies {abs(now - stamp):.1f} s "
                f"{'behind' if now > stamp else 'ahead of'} the node's clock ({now:.3f} s): "
                f"localized, but left out of the latency figures (max_stamp_offset "
                f"{self.cfg.max_stamp_offset:g} s)",
            )
        self.stats.record(
            ok=est.ok,
            score=est.score,
            confidence=est.confidence,
            latency_ms=latency_ms,
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
        assert self._confident is not None  # both callers check it first
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

    # -- re-localization (sequence mode) ---------------------------------------------------
    def _on_relocalize_request(self, request: Any, response: Any) -> Any:
        self._request_relocalize("service")
        response.success = True
        response.message = "global localization restarts: the filter re-initializes now"
        return response

    def _on_relocalize_message(self, msg: Empty) -> None:
        self._request_relocalize("topic")

    def _request_relocalize(self, via: str) -> None:
        """Any thread: only a flag, which the worker consumes (it owns the filter)."""
        assert self.tracking is not None  # ~/relocalize exists in sequence mode only
        self.tracking.request_reset()
        self.get_logger().info(f"re-localization requested ({via} ~/relocalize)")

    def _apply_relocalize(self) -> None:
        """The worker: reset the filter if asked to, and send /initialpose again once it
        tracks (``publish_initialpose``)."""
        if self.tracking is not None and self.tracking.apply_reset():
            self._initialpose_sent = False
            self.get_logger().info("re-localizing: global localization from the next frame on")

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
                tracking=self.tracking.diagnostics() if self.tracking is not None else None,
                calibration=self.calibration,
                calibration_warning=self.localizer.estimator.calibration_warning,
                inference=self.localizer.embedder.diagnostics(),
            )
        )

    def run(self) -> int:
        """Spin until SIGINT / SIGTERM, then stop the worker; 1 if the worker died first."""
        try:
            # callbacks only fill the frame slots: the worker thread does the work
            spin_until_signal(self, threads=1, stop_when=lambda: not self.worker_alive())
        finally:
            died = not self.worker_alive() and not self._stop.is_set()
            self.close()
        if died:
            self.get_logger().fatal(
                "the localizer worker thread ended: no frame would be localized any more; "
                "exiting with code 1 so that a supervisor (launch respawn, systemd) restarts "
                "the node"
            )
            return 1
        return 0

    def close(self) -> None:
        self._stop.set()
        self.slots.close()
        self._worker.join(timeout=10.0)


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
