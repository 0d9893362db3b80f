"""map_builder_node: build a LIP-Loc map live from PointCloud2 + poses, or offline from a bag.

Live mode (``bag_path`` empty):

- subscribes ``points_topic`` (sensor_msgs/PointCloud2) with QoS ``reliability`` (default
  best_effort, which matches every publisher) and a ``queue_depth`` (default 10) history,
  deeper than a camera's because a mapping drive wants every scan;
- poses: tf (``build.frame_id`` <- the cloud's frame_id) where tf2_ros is installed and
  ``use_tf`` is true, else ``pose_topic`` (Odometry / PoseStamped / PoseWithCovarianceStamped,
  type from ``pose_type`` or from the graph) interpolated to each scan's stamp and composed
  with ``base_to_lidar``;
- saves to ``map_path`` on the ``~/save`` service (std_srvs/Trigger), on any message on the
  ``~/save`` topic (std_msgs/Empty: for installs without std_srvs, or from a bag) and at
  shutdown (SIGINT / SIGTERM, ``save_on_shutdown``);
- every kept scan becomes one map entry per crop heading of ``build.headings`` (degrees,
  default [0.0]: the forward crop only), its pose the LiDAR's turned by the heading.

Scans are embedded by a worker thread (:class:`~liploc_ros.ros.live_map.LiveMapBuilder`), so a
batch that takes seconds stalls no callback. Offline mode (``bag_path`` set; what
``ros2 launch liploc_ros build_map.launch.py bag:=...`` runs) builds the map from the bag with
:func:`liploc_ros.mapping.build_map`, saves it and exits. A bad parameter or a missing or
corrupt model: a FATAL log line naming it and exit code 1. Should the worker thread end
while the node runs (it never should: its errors are logged and counted), the node saves
what it has, says so and exits with code 1, so that a supervisor restarts it.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import traceback
from typing import Any

import rclpy
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.timer import Timer
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Empty

from liploc_ros.config import to_dict
from liploc_ros.datasets.tf_tree import normalize_frame
from liploc_ros.errors import LiplocError
from liploc_ros.mapping.headings import format_headings
from liploc_ros.ros import conversions as conv
from liploc_ros.ros.lifecycle import Entities, autostart, check_changes, declare_lifecycle_config
from liploc_ros.ros.live_map import LiveMapBuilder
from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
from liploc_ros.ros.params import read_config
from liploc_ros.ros.pose_sources import PoseBuffer, extrinsic_matrix, tf_pose_lookup
from liploc_ros.ros.spin import spin_until_signal

try:  # a minimal ROS install may lack std_srvs: the ~/save topic does the same job
    from std_srvs.srv import Trigger
except ImportError:
    Trigger = None

NODE_NAME = "map_builder_node"
#: pose_type -> message class
POSE_TYPES = {
    "odometry": Odometry,
    "pose_stamped": PoseStamped,
    "pose_with_covariance_stamped": PoseWithCovarianceStamped,
}
#: ROS type name -> pose_type, for pose_type "auto"
_BY_TYPE_NAME = {
    "nav_msgs/msg/Odometry": "odometry",
    "geometry_msgs/msg/PoseStamped": "pose_stamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped": "pose_with_covariance_stamped",
}


class MapBuilderNode(LifecycleNode):
    """Configure: load the model (live mode: the builder, pose source and save requests);
    activate: take scans; deactivate: stop taking them; cleanup / shutdown: save (with
    ``save_on_shutdown``) and free the model."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.cfg: MapBuilderNodeConfig | None = None
        self.embedder: Any = None
        self.live: LiveMapBuilder | None = None
        self.configure_error: BaseException | None = None
        self.autostarting = False
        self._entities: Entities | None = None
        self._activity: list[Any] = []  # the scan subscription and progress timer, if active
        start = declare_lifecycle_config(self, MapBuilderNodeConfig, dynamic=())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if start:
            autostart(self)

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        return check_changes(MapBuilderNodeConfig, self.cfg, params, dynamic=())[0]

    # -- transitions ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        entities = Entities(self)
        try:
            self._configure()
        except Exception as err:  # any failure: the node stays unconfigured, for a retry
            self.live = self.embedder = self.cfg = None
            entities.destroy()
            self.configure_error = err
            if not self.autostarting:  # autostart: main() says it, FATAL
                detail = "" if isinstance(err, LiplocError) else f"\n{traceback.format_exc()}"
                self.get_logger().error(f"configure failed: {err}{detail}")
            return TransitionCallbackReturn.FAILURE
        self._entities = entities
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self.cfg = cfg = read_config(self, MapBuilderNodeConfig)
        if cfg.bag_path and not self.autostarting:
            raise LiplocError(
                "offline mode (bag_path set) builds the bag and exits: it runs with autostart "
                "true, not under a lifecycle manager"
            )
        from liploc_ros.mapping import MapBuilder  # after the parameters: torch takes seconds
        from liploc_ros.model.model_file import load_embedder  # the localizer node's loader

        b = cfg.build
        self.embedder = load_embedder(
            cfg.model,
            device=b.device,
            precision=b.precision,
            batch_size=b.batch_size,
            backend=b.backend,
        )
        if cfg.bag_path:
            return
        self.points_topic = self.resolve_topic_name(cfg.points_topic)
        self.live = LiveMapBuilder(
            MapBuilder(self.embedder, b, source=f"ros:{self.points_topic}"),
            self._pose_source(),
            pose_timeout=cfg.pose_timeout,
            max_pending=cfg.max_pending_scans,
            warn=self.get_logger().warning,
        )
        self.reliability = ReliabilityPolicy[cfg.reliability.upper()]
        saves = MutuallyExclusiveCallbackGroup()
        if Trigger is not None:
            self.create_service(Trigger, "~/save", self._on_save_service, callback_group=saves)
        self.create_subscription(Empty, "~/save", self._on_save_topic, 1, callback_group=saves)
        self.get_logger().info(
            f"building a map from {self.points_topic} ({cfg.reliability}, depth "
            f"{cfg.queue_depth}), poses from {self.pose_origin}, crops facing "
            f"{format_headings(b.headings)} deg; saving to {cfg.map_path}"
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.cfg
        if self.live is not None and cfg is not None:
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=cfg.queue_depth,
                reliability=self.reliability,
            )
            scans = MutuallyExclusiveCallbackGroup()
            self._activity = [
                self.create_subscription(
                    PointCloud2, cfg.points_topic, self._on_cloud, qos, callback_group=scans
                ),
                self.create_timer(cfg.progress_period, self._log_progress),
            ]
            self._last = (time.monotonic(), self.live.stats().received)
            self.get_logger().info(f"active: taking scans from {self.points_topic}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_taking_scans()
        if self.live is not None:
            self.get_logger().info("inactive: scans are not taken (~/save still saves)")
        return super().on_deactivate(state)

    def _stop_taking_scans(self) -> None:
        for entity in self._activity:
            if isinstance(entity, Timer):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._activity = []

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Stop taking scans, save what was built (``save_on_shutdown``), free the model."""
        self._stop_taking_scans()
        live, cfg, entities = self.live, self.cfg, self._entities
        self.live = self.embedder = self.cfg = self._entities = None
        if live is not None and cfg is not None:
            result = live.close(cfg.map_path if cfg.save_on_shutdown else None)
            if result is not None:
                self.get_logger().info(
                    f"saved {result.entries} entries to {result.path} at shutdown"
                )
        if entities is not None:
            entities.destroy()
        gc.collect()

    def close(self) -> None:
        """The shutdown transition (from any state): saves and releases everything."""
        with contextlib.suppress(Exception):  # finalized, or in a transition: by hand then
            self.trigger_shutdown()
        self._release()

    @property
    def config(self) -> MapBuilderNodeConfig:
        """The parameters; every method below runs while configured."""
        assert self.cfg is not None, "the node is not configured"
        return self.cfg

    @property
    def _live(self) -> LiveMapBuilder:
        """The live builder; every callback below runs in live mode only (no bag_path)."""
        assert self.live is not None, "the node builds its map from a bag"
        return self.live

    # -- poses ----------------------------------------------------------------------------
    def _pose_source(self) -> Any:
        cfg = self.config
        tf = tf_pose_lookup(self, cfg.build.frame_id) if cfg.use_tf else None
        if tf is not None:
            self.pose_origin = f"tf ({cfg.build.frame_id} <- each cloud's frame)"
            lookup, self._tf_listener = tf
            return lookup
        if cfg.use_tf:
            self.get_logger().warning(f"tf2_ros is not installed: poses from {cfg.pose_topic}")
        self.poses = PoseBuffer(
            max_gap=cfg.max_pose_gap, sensor_to_lidar=extrinsic_matrix(cfg.base_to_lidar)
        )
        self.pose_origin = f"{self.resolve_topic_name(cfg.pose_topic)} ({cfg.pose_type})"
        self._pose_timer = self.create_timer(0.5, self._subscribe_poses)
        self._frame_warned = False
        return self.poses

    def _subscribe_poses(self) -> None:
        """Subscribe pose_topic; with pose_type auto, once a publisher shows its type."""
        kind: str = self.config.pose_type
        topic = self.resolve_topic_name(self.config.pose_topic)
        if kind == "auto":
            types = dict(self.get_topic_names_and_types()).get(topic, [])
            kind = next((_BY_TYPE_NAME[t] for t in types if t in _BY_TYPE_NAME), "auto")
            if kind == "auto":
                if types:
                    self.get_logger().error(
                        f"{topic} has type {types}, not a pose type", throttle_duration_sec=10.0
                    )
                return
            self.get_logger().info(f"poses: {topic} is {kind}")
        self._pose_timer.cancel()
        qos = QoSProfile(depth=100, reliability=self.reliability)
        self.create_subscription(POSE_TYPES[kind], topic, self._on_pose, qos)

    def _on_pose(self, msg: Any) -> None:
        try:
            pose = conv.pose_message_to_matrix(msg)
            self.poses.add(pose.stamp, pose.matrix)
        except LiplocError as err:
            self._live.warn("bad_pose", f"{self.pose_origin}: pose dropped: {err}")
            return
        self._live.poses_changed()
        frame = normalize_frame(pose.frame_id)
        if frame and frame != self.config.build.frame_id and not self._frame_warned:
            self._frame_warned = True
            self.get_logger().warning(
                f"poses come in frame '{frame}' and are stored as "
                f"'{self.config.build.frame_id}' (build.frame_id)"
            )

    # -- scans and saving -----------------------------------------------------------------
    def _on_cloud(self, msg: PointCloud2) -> None:
        stamp, topic = conv.stamp_to_seconds(msg.header.stamp), self.points_topic
        try:
            points = conv.cloud_to_points(msg)
        except LiplocError as err:
            self._live.warn("bad_cloud", f"{topic}: cloud at {stamp:.3f} s dropped: {err}")
            return
        if points.shape[0] == 0:
            self._live.warn(
                "empty", f"{topic}: cloud at {stamp:.3f} s has no finite point; dropped"
            )
            return
        self._live.submit(points, stamp, msg.header.frame_id)

    def save(self) -> tuple[bool, str]:
        """Save now (waits for the worker); (success, message) for the caller and the log."""
        try:
            result = self._live.save(self.config.map_path).result()
        except Exception as err:  # reported to the caller: the node keeps running
            self.get_logger().error(f"save failed: {err}")
            return False, f"save failed: {err}"
        s = result.stats
        message = (
            f"saved {result.entries} entries to {result.path} ({s.received} scans "
            f"received, {s.pending} waiting, {s.dropped_no_pose} without pose)"
        )
        self.get_logger().info(message)
        return True, message

    def _on_save_topic(self, _msg: Empty) -> None:
        self.save()

    def _on_save_service(self, request: Any, response: Any) -> Any:
        response.success, response.message = self.save()
        return response

    def _log_progress(self) -> None:
        s, (t0, n0), now = self._live.stats(), self._last, time.monotonic()
        if s.received != n0:
            self.get_logger().info(
                f"{s.entries} entries from {s.received} scans "
                f"({(s.received - n0) / (now - t0):.1f} scans/s), {s.pending} waiting; dropped: "
                f"{s.dropped_no_pose} without pose, {s.dropped_overflow} on overflow, "
                f"{s.dropped_invalid} invalid"
            )
        self._last = (now, s.received)

    # -- running --------------------------------------------------------------------------
    def run_live(self) -> int:
        """Spin until SIGINT / SIGTERM; then save (ROS is still up for it), even after an
        error in a callback. Unconfigured (autostart false), a lifecycle manager drives it."""
        try:
            spin_until_signal(self, stop_when=self._worker_died)
        finally:
            died = self._worker_died()
            self.close()
        if died:
            self.get_logger().fatal(
                "the map worker thread ended: no scan would be added any more; exiting with "
                "code 1 so that a supervisor (launch respawn, systemd) restarts the node"
            )
            return 1
        return 0

    def _worker_died(self) -> bool:
        return self.live is not None and not self.live.alive

    def run_offline(self) -> int:
        from liploc_ros.datasets.registry import open_source
        from liploc_ros.mapping import build_map

        spec = f"bag:{self.config.bag_path}"
        source = open_source(spec, **to_dict(self.config.bag))
        database, summary = build_map(source, self.embedder, self.config.build)
        self._calibrate(database, spec)
        path = database.save(self.config.map_path, index=self.config.build.index)
        for line in summary.lines():
            self.get_logger().info(line)
        self.get_logger().info(f"saved {len(database)} entries to {path}")
        return 0

    def _calibrate(self, database: Any, spec: str) -> None:
        """The map's score calibration from the bag's camera frames, as build-map does
        (where the bag has a camera topic and poses; else a warning)."""
        from liploc_ros.datasets.registry import open_source
        from liploc_ros.mapping.calibration_drive import UNCALIBRATED, calibrate_map

        frames = self.config.build.calibration_frames
        if frames == 0:
            log = self.get_logger()
            log.warning(f"no calibration (build.calibration_frames 0): {UNCALIBRATED}")
            return
        source = open_source(spec, **to_dict(self.config.bag))
        calibration, why_not = calibrate_map(
            database, source, self.embedder, same_drive=True, max_frames=frames
        )
        if calibration is None:
            self.get_logger().warning(why_not)
            return
        for line in calibration.describe():
            self.get_logger().info(line)


def main(args: list[str] | None = None) -> int:
    """Console script ``map_builder_node``; the exit code (0, 1 error, 2 bad arguments)."""
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as err:  # rcl's own error type: bad --ros-args
        print(f"{NODE_NAME}: cannot start: {err}", file=sys.stderr)
        return 2
    node = None
    try:
        node = MapBuilderNode()
        offline = node.cfg is not None and node.cfg.bag_path
        return node.run_offline() if offline else node.run_live()
    except LiplocError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting or in offline mode
        return 130
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
