"""What localizer_node holds while configured, and its worker: model, map, filter, outputs.

Made by the node's ``on_configure`` (:class:`LocalizerRuntime` loads everything, creates the
lifecycle publishers and the services), started by ``on_activate`` (camera and request
subscriptions, the worker thread, the timers), paused by ``on_deactivate`` (subscriptions
and timers gone, frames still in a slot dropped, publishers disabled by the node) and closed
by ``on_cleanup`` / ``on_shutdown`` (the worker joined; the node then destroys every entity
the configure made and drops this object, which frees the model and the map).

One worker thread decodes and localizes the newest frame of the camera that has waited
longest (:class:`~liploc_ros.ros.frame_slots.LatestFrameSlots`); a failure on one frame is
counted, logged and reported, and the worker goes on. A parameter change
(:meth:`LocalizerRuntime.reconfigure`, from the node's set-parameters callback) takes
effect at once for what the executor owns (timers, publishers, subscriptions) and, for the
localizer's and the filter's settings, in the worker between two frames.
"""

from __future__ import annotations

import threading
import time
import traceback
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from liploc_ros.geometry import invert_transform
from liploc_ros.localization.base_pose import BasePose, base_pose
from liploc_ros.localization.mode import ModeSettings
from liploc_ros.ros import conversions as conv
from liploc_ros.ros import localizer_messages as msgs
from liploc_ros.ros.frame_slots import LatestFrameSlots, TakenFrame
from liploc_ros.ros.image_input import BadImageError, decode_image, trailing_bytes
from liploc_ros.ros.initialpose_input import SentPoses
from liploc_ros.ros.localizer_params import LocalizerNodeConfig
from liploc_ros.ros.localizer_requests import LocalizerRequests
from liploc_ros.ros.localizer_setup import calibration_summary, load_localizer
from liploc_ros.ros.localizer_stats import LocalizerStats, stamp_is_far
from liploc_ros.ros.map_odom_tf import MapToOdom
from liploc_ros.ros.odometry_input import OdometryInput
from liploc_ros.ros.pose_sources import extrinsic_matrix
from liploc_ros.ros.safe_log import severity_log
from liploc_ros.ros.tf_listener import SharedTf
from liploc_ros.ros.throttle import WarningThrottle
from liploc_ros.ros.tracking_session import TrackingSession

__all__ = ["CAMERA_QOS", "IMAGE_TYPES", "LATCHED_QOS", "LocalizerRuntime"]

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


class LocalizerRuntime:
    """See the module docstring; ``node`` is the LifecycleNode, ``cfg`` its parameters."""

    def __init__(self, node: Any, cfg: LocalizerNodeConfig) -> None:
        self.node, self.cfg = node, cfg
        log = self._log = node.get_logger()
        self.localizer = load_localizer(cfg, log)
        tracks = self.localizer.mode.uses_odometry  # a mode that tracks (sequence)
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
        self._sim_time = bool(node.get_parameter("use_sim_time").value)
        self._padded: set[str] = set()  # cameras told about bytes after step x height
        self.active = threading.Event()

        self.pose_pub = self._publisher(PoseWithCovarianceStamped, "~/pose", 10)
        self.odom_pub = self._publisher(Odometry, "~/odom", 10) if cfg.publish_odom else None
        self.diag_pub = self._publisher(DiagnosticArray, "/diagnostics", 10)
        self.initialpose_pub = self._publisher(
            PoseWithCovarianceStamped, cfg.initialpose_topic, LATCHED_QOS
        )
        self.sent_poses = SentPoses()
        self._initialpose_sent = False
        self._confident: tuple[BasePose, Any, float] | None = None
        self._route_pub: Any = None
        self.match_pub: Any = None
        self.particles_pub: Any = None
        self._particles = tracks
        if cfg.publish_markers:
            self._create_marker_publishers()
        self._tf, self.tf_buffer = None, SharedTf(node)  # one tf listener for all users
        if cfg.publish_tf:
            frames = (self.frame_id, cfg.odom_frame, cfg.base_frame)
            tol, warn = cfg.transform_tolerance, self.throttle.warn
            self._tf = MapToOdom.create(node, frames, tol, warn, self.tf_buffer)
            if self._tf is None:
                log.warning("publish_tf is unavailable: tf2_ros is not installed (no map -> "
                            "odom broadcast; poses are still published)")  # fmt: skip
        self.tracking = TrackingSession(self.localizer, self._odometry(cfg)) if tracks else None
        self.requests = LocalizerRequests(node, self)
        self.topics = [node.resolve_topic_name(t) for t in cfg.image_topics]
        self.slots: LatestFrameSlots[Any] = LatestFrameSlots(self.topics)
        self._cameras: dict[str, Any] = {}  # topic -> subscription, while active
        self._subscribed: dict[str, str] = {}  # topic -> its message type, once learned
        self._timers: dict[str, Any] = {}
        self._pending: LocalizerNodeConfig | None = None
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def _publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        """A lifecycle publisher, enabled at once if the node is already active."""
        pub = self.node.create_lifecycle_publisher(msg_type, topic, qos)
        if self.active.is_set():
            pub.on_activate(None)
        return pub

    def _odometry(self, cfg: LocalizerNodeConfig) -> OdometryInput:
        return OdometryInput.create(
            self.node, cfg, self.T_base_lidar, self.throttle.warn, self.tf_buffer
        )

    def _create_marker_publishers(self) -> None:
        """Latched publishers on ~/markers, one per kind, so that a late RViz gets the route,
        the last match and (sequence mode) the last particles."""
        self._route_pub = self._publisher(MarkerArray, "~/markers", LATCHED_QOS)
        self.match_pub = self._publisher(MarkerArray, "~/markers", LATCHED_QOS)
        if self._particles:
            self.particles_pub = self._publisher(MarkerArray, "~/markers", LATCHED_QOS)
        if self.active.is_set():
            self._publish_route()

    def _publish_route(self) -> None:
        route = self.database.poses @ self.T_lidar_base
        self._route_pub.publish(
            msgs.route_markers(route[:, :3, 3], self.database.source_index, self.frame_id)
        )

    # -- lifecycle --------------------------------------------------------------------------
    def activate(self) -> None:
        """Publishers are enabled (by the node) first: the route goes out, the worker runs,
        the cameras and requests are subscribed, the timers start."""
        self.active.set()
        if self._route_pub is not None:
            self._publish_route()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="liploc-localizer",
                                            daemon=True)  # fmt: skip
            self._worker.start()
        # steady clock: with use_sim_time and a paused (or not yet started) bag, ROS time
        # stands still, but topics must still be discovered and health still reported
        self._timer("discovery", self.cfg.discovery_period, self._discover)
        self._timer("diagnostics", self.cfg.diagnostics_period, self.publish_diagnostics)
        self._discover()
        self.requests.subscribe()

    def deactivate(self) -> None:
        """No new frame; the one in a slot is dropped; a frame in flight publishes nothing
        (the node disables the publishers)."""
        self.active.clear()
        for sub in self._cameras.values():
            self.node.destroy_subscription(sub)
        self._cameras.clear()
        for name in list(self._timers):
            self.node.destroy_timer(self._timers.pop(name))
        self.requests.unsubscribe()

    def _timer(self, name: str, period: float, callback: Any) -> None:
        if name in self._timers:
            self.node.destroy_timer(self._timers.pop(name))
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers[name] = self.node.create_timer(period, callback, clock=steady)

    def close(self) -> None:
        """Stop the worker (waits for the frame in flight)."""
        self.active.clear()
        self._stop.set()
        self.slots.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)

    def worker_died(self) -> bool:
        """True once the worker thread has ended without :meth:`close`."""
        return self._worker is not None and not self._worker.is_alive() and not self._stop.is_set()

    # -- parameters -------------------------------------------------------------------------
    def reconfigure(self, new: LocalizerNodeConfig) -> None:
        """Apply validated dynamic parameters (executor thread)."""
        old, self.cfg = self.cfg, new
        if new.localizer != old.localizer or new.sequence != old.sequence:
            with self._pending_lock:
                self._pending = new  # the worker applies it before its next frame
        if new.warn_period != old.warn_period:
            for throttle in (self.throttle, self._errors):
                throttle.period = new.warn_period
        if self._tf is not None:
            self._tf.tolerance = new.transform_tolerance
        if new.odom_timeout != old.odom_timeout and self.tracking is not None:
            previous = self.tracking.odometry
            self.tracking.odometry = self._odometry(new)
            keep = getattr(previous, "_keep", None)
            if keep is not None:
                self.node.destroy_subscription(keep)
        if new.publish_odom and self.odom_pub is None:
            self.odom_pub = self._publisher(Odometry, "~/odom", 10)
        if new.publish_markers and self.match_pub is None:
            self._create_marker_publishers()
        if new.diagnostics_period != old.diagnostics_period and "diagnostics" in self._timers:
            self._timer("diagnostics", new.diagnostics_period, self.publish_diagnostics)
        if new.initialpose_in != old.initialpose_in and self.active.is_set():
            self.requests.listen_initialpose(new.initialpose_in)

    def _apply_pending(self) -> None:
        """The worker: the mode's new settings, between two frames."""
        with self._pending_lock:
            new, self._pending = self._pending, None
        if new is not None:
            self.localizer.reconfigure(ModeSettings(new.localizer, new.sequence))

    # -- camera topics ----------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe the image topics whose type the graph now tells."""
        graph = dict(self.node.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._cameras:
                continue
            kind = self._subscribed.get(topic)
            if kind is None:
                types = graph.get(topic, [])
                kind = next((t for t in types if t in IMAGE_TYPES), None)
                if kind is None:
                    if types:
                        self._graph_warnings.warn(
                            topic,
                            f"{topic} has type {', '.join(types)}, not sensor_msgs/msg/Image "
                            "or CompressedImage: not subscribed",
                        )
                    else:
                        self._waiting.warn(topic, f"waiting for a publisher on {topic}")
                    continue
            self._cameras[topic] = self.node.create_subscription(
                IMAGE_TYPES[kind], topic, partial(self.slots.put, topic), CAMERA_QOS
            )
            if topic not in self._subscribed:
                self._subscribed[topic] = kind
                self._log.info(f"subscribed to {topic} ({kind}, best effort, depth 1)")
        if len(self._cameras) == len(self.topics) and "discovery" in self._timers:
            self.node.destroy_timer(self._timers.pop("discovery"))

    # -- the worker -------------------------------------------------------------------------
    def _work(self) -> None:
        """Localize frames until closed; a failure on one frame never ends the loop."""
        while not self._stop.is_set():
            try:
                self._apply_pending()
                self._apply_relocalize()  # also while no frame comes
            except Exception:
                self._internal_error("reconfigure")
            taken = self.slots.take(timeout=0.25)
            if taken is None or not self.active.is_set():
                continue  # inactive: a frame still in its slot is dropped
            try:
                self._process(taken)
            except Exception:  # a bug: count it, say it, go on with the next frame
                self._internal_error(f"{taken.camera}: frame")

    def _internal_error(self, what: str) -> None:
        """Count and log (throttled, ERROR) what the worker failed on; never raises."""
        try:
            self.stats.record_error()
            self._errors.warn(
                "internal error",
                f"{what} failed, the worker goes on with the next one:\n{traceback.format_exc()}",
            )
        except Exception:  # the report itself failed: the worker must live on
            pass

    def _process(self, taken: TakenFrame[Any]) -> None:
        t0 = time.monotonic()
        cfg, msg = self.cfg, taken.item
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
            self._log.warning(
                f"{taken.camera}: Image data holds {extra} bytes after step x height "
                f"({msg.step} x {msg.height}); frames are decoded from the first "
                f"{msg.step * msg.height} bytes (said once per camera)"
            )
        if self.tracking is None:
            est = self.localizer.localize(rgb, stamp, timings_ms={"decode": decode_ms})
        else:
            self._apply_relocalize()
            est = self.tracking.localize(rgb, stamp, {"decode": decode_ms})
        if not self.active.is_set():
            return  # deactivated while this frame was in flight: no output
        fix = None
        if est.ok:
            fix = base_pose(est, self.database, self.T_base_lidar, cfg.localizer)
            self._publish_fix(fix, msg.header.stamp, est.confidence)
        markers = cfg.publish_markers and est.best_pose is not None
        if markers and self.match_pub is not None:
            T = fix.matrix if fix is not None else est.best_pose @ self.T_lidar_base
            valid = est.indices[est.indices >= 0][: cfg.localizer.top_k]
            matches = (self.database.poses_at(valid) @ self.T_lidar_base)[:, :3, 3]
            self.match_pub.publish(
                msgs.match_markers(T, matches, est.ok, msg.header.stamp, self.frame_id)
            )
        if markers and self.particles_pub is not None and self.tracking is not None:
            xy = self.tracking.particles_due(self.T_lidar_base)
            if xy is not None:
                z = (est.best_pose @ self.T_lidar_base)[2, 3]
                self.particles_pub.publish(
                    msgs.particle_markers(xy, z, msg.header.stamp, self.frame_id)
                )
        now = self.node.get_clock().now().nanoseconds * 1e-9
        latency_ms: float | None = 1e3 * (now - stamp)
        if not self._sim_time and stamp_is_far(stamp, now, cfg.max_stamp_offset):
            latency_ms = None
            self.throttle.warn(
                "stamp far from the clock",
                f"{taken.camera}: frame stamped {stamp:.3f} s lies {abs(now - stamp):.1f} s "
                f"{'behind' if now > stamp else 'ahead of'} the node's clock ({now:.3f} s): "
                f"localized, but left out of the latency figures (max_stamp_offset "
                f"{cfg.max_stamp_offset:g} s)",
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
        if self.odom_pub is not None and cfg.publish_odom:
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

    # -- initial pose out -------------------------------------------------------------------
    def _send_initialpose(self) -> str:
        assert self._confident is not None  # both callers check it first
        fix, stamp, confidence = self._confident
        message = msgs.pose_message(fix.matrix, fix.covariance, stamp, self.frame_id)
        self.sent_poses.add(message)  # before it can come back on initialpose_in_topic
        self.initialpose_pub.publish(message)
        x, y, t = fix.matrix[0, 3], fix.matrix[1, 3], conv.stamp_to_seconds(stamp)
        text = (
            f"initial pose sent on {self.initialpose_pub.topic_name}: x {x:.2f} y {y:.2f} in "
            f"'{self.frame_id}' (confidence {confidence:.2f}, stamp {t:.3f} s)"
        )
        self._log.info(text)
        return text

    def send_initialpose_again(self) -> tuple[bool, str]:
        """The ~/publish_initialpose service: (success, message)."""
        if self._confident is None:
            return False, (
                "no fix with confidence >= initialpose_min_confidence "
                f"({self.cfg.initialpose_min_confidence}) yet"
            )
        if not self.active.is_set():
            return False, "the node is not active: nothing is published"
        return True, self._send_initialpose()

    def _apply_relocalize(self) -> None:
        """The worker: the tracking session's requests (new settings, reset, seed, no-motion
        update); after a reset, /initialpose goes out again once the filter tracks
        (``publish_initialpose``)."""
        if self.tracking is None:
            return
        done = self.tracking.apply_requests()
        if "reset" in done:
            self._initialpose_sent = False
            self._log.info("re-localizing: global localization from the next frame on")
        if "seed" in done:
            self._log.info("the filter restarts from the initial pose")
        if "seed refused" in done:
            self.throttle.warn(
                "bad initial pose", f"initial pose refused: {self.tracking.seed_error}"
            )

    # -- diagnostics ------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        loaded = self.localizer.embedder.loaded
        waiting = tuple(t for t in self.topics if t not in self._cameras)
        self.diag_pub.publish(
            msgs.diagnostics_message(
                f"{self.node.get_name()}: LIP-Loc localization",
                f"{loaded.model_config.name} {loaded.fingerprint}",
                self.node.get_clock().now().to_msg(),
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
