"""Sequence mode's odometry: the LiDAR's pose in the odometry frame at an image's stamp.

The filter predicts with the motion between two frames' odometry poses, so each frame asks
for base_frame's pose in odom_frame at its own stamp and turns it into the LiDAR's (the
map's entries are LiDAR poses): ``T_odom_lidar = T_odom_base @ T_base_lidar``.

- **tf** (where tf2_ros is installed): ``odom_frame -> base_frame`` at the stamp; failing
  that, tf's newest if at most ``timeout`` older.
- **topic**: nav_msgs/Odometry into an :class:`OdometryBuffer`, interpolated between the
  samples around the stamp unless they are more than ``timeout`` apart (never
  extrapolated); an image newer than the newest sample takes the newest sample if that is
  at most ``timeout`` older.

An image newer than the newest odometry waits up to :data:`WAIT_S` for it (a bag plays an
image and its odometry at the same instant), but only while odometry *flows*: a new sample
(topic) or a newer transform (tf) arrived within :data:`FLOWING_S` of wall-clock time. Where
none ever came (a client sending images only) or it stopped, a frame waits for nothing.
The time spent waiting is measured (:meth:`OdometryInput.wait_ms`, on /diagnostics).

A frame without odometry gets None (the filter random-walks): counted per cause, warned about.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError, LiplocError
from liploc_ros.ros.pose_sources import PoseBuffer
from liploc_ros.ros.tf_listener import SharedTf

__all__ = ["WAIT_S", "OdometryBuffer", "OdometryInput", "resolve_source"]

#: how long a frame may wait for its odometry to arrive (tf or topic), while it flows
WAIT_S = 0.05
#: odometry flows while its newest sample arrived at most this long ago (s, wall clock)
FLOWING_S = 1.0
#: causes of a frame without odometry
NOT_YET, TOO_OLD, GAP, STALE, NO_TF, OFF = (
    "no odometry received yet",
    "odometry older than the buffer",
    "odometry gap",
    "odometry stale",
    "no odometry tf",
    "odometry_source none",
)

Lookup = Callable[[float], tuple[np.ndarray | None, str]]


class OdometryBuffer(PoseBuffer):
    """Recent odometry samples (T_odom_base) answered as T_odom_lidar; see the module
    docstring. Thread-safe: the executor adds, the worker waits and looks up."""

    def __init__(
        self,
        timeout: float,
        T_base_lidar: np.ndarray,
        history: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_gap=timeout, history=history, sensor_to_lidar=T_base_lidar)
        self.timeout = float(timeout)
        self._arrived = threading.Condition()
        self._clock = clock
        self._last_arrival = -np.inf

    def add(self, stamp: float, pose: np.ndarray) -> None:
        super().add(stamp, pose)
        with self._arrived:
            self._last_arrival = self._clock()
            self._arrived.notify_all()

    def flowing(self) -> bool:
        """A sample arrived within :data:`FLOWING_S` (wall clock)."""
        with self._arrived:
            return self._clock() - self._last_arrival <= FLOWING_S

    def at(self, stamp: float, wait: float = 0.0) -> tuple[np.ndarray | None, str]:
        """(T_odom_lidar at ``stamp``, "") or (None, the cause); waits up to ``wait`` s for a
        sample that new while odometry flows."""
        if wait > 0 and self.flowing():
            with self._arrived:
                self._arrived.wait_for(lambda: (self.newest or -np.inf) >= stamp, wait)
        with self._lock:
            if not self._stamps:
                return None, NOT_YET
            first, newest = self._stamps[0], self._stamps[-1]
            latest = self._poses[-1]
        if stamp > newest:
            if stamp - newest > self.timeout:
                return None, STALE
            return latest @ self.sensor_to_lidar, ""
        if stamp < first:
            return None, TOO_OLD
        try:
            return self.lookup("", stamp), ""
        except LiplocError:  # NoPoseError: inside a gap (the oldest samples may have gone)
            return None, GAP


def resolve_source(source: str) -> str:
    """``auto`` -> ``tf`` where tf2_ros is installed, else ``topic``; others unchanged."""
    if source != "auto":
        return source
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return "topic"
    return "tf"


def _tf_lookup(tf: SharedTf, cfg: Any, T_base_lidar: np.ndarray) -> Lookup:
    """T_odom_lidar from tf's odom -> base in the node's shared buffer (or None and why)."""
    import tf2_ros
    from rclpy.duration import Duration
    from rclpy.time import Time

    from liploc_ros.ros import conversions as conv

    buffer = tf.buffer()
    odom_frame, base_frame, timeout = cfg.odom_frame, cfg.base_frame, cfg.odom_timeout
    # tf flows while its newest odom -> base stamp keeps advancing (wall clock of the last
    # advance); tf itself does not say when a transform arrived
    newest = {"stamp": -np.inf, "seen": -np.inf}

    def newest_transform() -> Any:
        msg = buffer.lookup_transform(odom_frame, base_frame, Time())
        stamp = conv.stamp_to_seconds(msg.header.stamp)
        if stamp > newest["stamp"]:
            newest.update(stamp=stamp, seen=time.monotonic())
        return msg

    def lookup(stamp: float) -> tuple[np.ndarray | None, str]:
        at = Time(nanoseconds=round(stamp * 1e9))
        try:
            msg = buffer.lookup_transform(odom_frame, base_frame, at)
        except tf2_ros.TransformException:
            try:  # nothing that new yet: the newest transform, if recent enough
                msg = newest_transform()
                flowing = time.monotonic() - newest["seen"] <= FLOWING_S
                if flowing and conv.stamp_to_seconds(msg.header.stamp) < stamp:
                    msg = buffer.lookup_transform(
                        odom_frame, base_frame, at, timeout=Duration(seconds=WAIT_S)
                    )
            except tf2_ros.TransformException:
                try:
                    msg = newest_transform()
                except tf2_ros.TransformException:
                    return None, NO_TF
            age = stamp - conv.stamp_to_seconds(msg.header.stamp)
            if age < 0.0:  # tf has newer transforms, not this one (older than its cache)
                return None, NO_TF
            if age > timeout:
                return None, STALE
        return conv.transform_to_matrix(msg.transform) @ T_base_lidar, ""

    return lookup


class OdometryInput:
    """T_odom_lidar at image stamps from one source; counts and warns about frames without."""

    def __init__(
        self, source: str, label: str, lookup: Lookup | None, warn: Callable, keep: Any = None
    ) -> None:
        self.source, self.label = source, label
        self._lookup, self._warn = lookup, warn
        self._keep = keep  # the odometry subscription: alive as long as this
        self._lock = threading.Lock()
        self._missing: dict[str, int] = {}
        self._waited_s = 0.0
        self._lookups = 0

    @classmethod
    def create(
        cls,
        node: Any,
        cfg: Any,
        T_base_lidar: np.ndarray,
        warn: Callable,
        tf: SharedTf | None = None,
    ) -> OdometryInput:
        """The source ``cfg.odometry_source`` names (a LocalizerNodeConfig), on ``node``;
        tf odometry reads ``tf``, the node's shared tf buffer (one of its own if None)."""
        source = resolve_source(cfg.odometry_source)
        if source == "none":
            return cls("none", "none", None, warn)
        if source == "tf":
            try:
                lookup = _tf_lookup(tf or SharedTf(node), cfg, T_base_lidar)
            except ImportError:
                raise ConfigError(
                    "odometry_source 'tf' needs tf2_ros, which is not installed here: use "
                    "odometry_source 'topic' (nav_msgs/Odometry on odom_topic) or 'none'"
                ) from None
            return cls("tf", f"tf {cfg.odom_frame} -> {cfg.base_frame}", lookup, warn)
        buffer = OdometryBuffer(cfg.odom_timeout, T_base_lidar)
        topic = node.resolve_topic_name(cfg.odom_topic)
        subscription = _subscribe(node, topic, buffer, cfg.base_frame, warn)
        return cls("topic", f"topic {topic}", lambda t: buffer.at(t, WAIT_S), warn, subscription)

    def at(self, stamp: float) -> np.ndarray | None:
        """T_odom_lidar at ``stamp``, or None (counted, warned about)."""
        t0 = time.monotonic()
        pose, cause = (None, OFF) if self._lookup is None else self._lookup(stamp)
        with self._lock:
            self._waited_s += time.monotonic() - t0
            self._lookups += 1
            if pose is None:
                self._missing[cause] = self._missing.get(cause, 0) + 1
        if pose is not None:
            return pose
        if cause == OFF:  # chosen: counted, not warned about
            return None
        self._warn(
            cause,
            f"no odometry ({self.label}) for the frame at {stamp:.3f} s: {cause}; the filter "
            "takes a random-walk step for it",
        )
        return None

    def missing_counts(self) -> dict[str, int]:
        """Frames without odometry so far, per cause."""
        with self._lock:
            return dict(self._missing)

    def wait_ms(self) -> float:
        """Mean time (ms) a frame spent getting its odometry, waiting included (0 before the
        first frame)."""
        with self._lock:
            return 1e3 * self._waited_s / self._lookups if self._lookups else 0.0


def _subscribe(
    node: Any, topic: str, buffer: OdometryBuffer, base_frame: str, warn: Callable
) -> Any:
    """nav_msgs/Odometry on ``topic`` into ``buffer`` (best effort: matches any publisher)."""
    from nav_msgs.msg import Odometry
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from liploc_ros.ros import conversions as conv

    def on_odometry(msg: Odometry) -> None:
        child = msg.child_frame_id.lstrip("/")
        if child and child != base_frame.lstrip("/"):
            warn("odometry child frame", f"{topic} gives the pose of '{child}', not base_frame "
                 f"'{base_frame}': used as base_frame's")  # fmt: skip
        try:
            buffer.add(conv.stamp_to_seconds(msg.header.stamp), conv.pose_to_matrix(msg.pose.pose))
        except LiplocError as err:
            warn("bad odometry", f"{topic}: odometry message dropped: {err}")

    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT
    )
    return node.create_subscription(Odometry, topic, on_odometry, qos)
