"""Play a ROS 2 bag onto a live graph in real time, for machines without ``ros2 bag play``.

The bag is read with ``rosbags`` (no rosbag2_py needed) and each message is published with
rclpy *as recorded*: its serialized CDR bytes go to ``Publisher.publish`` unchanged, so
header stamps and every field stay the bag's and nothing is deserialised. A publisher needs
the message class for its type support; a topic whose message package is not installed
(``tf2_msgs`` on a pip-only install) is skipped and reported.

- Timing follows the bag's receive times: message i goes out at
  ``start + (t_i - t_first) / rate`` on the monotonic clock; ``start_offset`` skips the
  first seconds; ``loop`` starts over (``/clock`` then jumps back, as with ros2 bag play).
- ``/tf_static`` and every topic recorded with transient-local durability are latched:
  published transient local, all their messages up front, so late subscribers get them.
- ``clock``: rosgraph_msgs/Clock on ``/clock`` at ``clock_frequency`` Hz with the bag time
  being played, for nodes run with ``use_sim_time``.

The bag is a ROS 2 bag folder, one of its storage files, or a bare ``.mcap`` file (or a
folder of them) without metadata.yaml, as kitti2mcap writes. ROS 1 bags are refused (their
messages are not ROS 2 CDR): convert them first (``rosbags-convert``).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from liploc_ros.datasets.bag_paths import bag_reader_paths
from liploc_ros.errors import ConfigError, DatasetError

__all__ = ["BagPlayer", "PlayOptions", "PlayStats", "message_class", "play_bag"]

LATCHED_TOPICS = frozenset({"/tf_static"})
_NS = 1_000_000_000


@dataclass(frozen=True)
class PlayOptions:
    """How to play a bag (the flags of ``liploc play``)."""

    #: playback speed factor: 2 plays twice as fast, 0.5 at half speed
    rate: float = 1.0
    #: start over at the end, until stopped
    loop: bool = False
    #: topics to play; empty: every topic
    topics: tuple[str, ...] = ()
    #: seconds of the bag to skip at its start
    start_offset: float = 0.0
    #: publish /clock (rosgraph_msgs/Clock) with the bag time being played
    clock: bool = False
    clock_frequency: float = 40.0
    #: history depth of the (reliable, volatile) publishers of ordinary topics
    queue_depth: int = 10

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.rate < float("inf")):
            raise ConfigError(f"rate must be a positive number, got {self.rate}")
        if not self.start_offset >= 0:
            raise ConfigError(f"start_offset must be >= 0 s, got {self.start_offset}")
        if not self.clock_frequency > 0:
            raise ConfigError(f"clock_frequency must be positive, got {self.clock_frequency}")
        if self.queue_depth < 1:
            raise ConfigError(f"queue_depth must be at least 1, got {self.queue_depth}")


@dataclass
class PlayStats:
    """What a playback did."""

    #: messages published per topic
    published: dict[str, int] = field(default_factory=dict)
    #: topic -> why it was not played (message package not installed)
    skipped: dict[str, str] = field(default_factory=dict)
    #: passes over the bag started
    loops: int = 0
    #: wall-clock seconds of the playback
    seconds: float = 0.0
    #: stopped before the end
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.published.values())


def message_class(type_name: str) -> type:
    """'pkg/msg/Name' -> the installed rclpy message class; ImportError when not installed."""
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:  # not on PyPI: the same lookup by hand
        parts = type_name.split("/")
        if len(parts) == 2:  # 'pkg/Name' (ROS 1 style)
            parts = [parts[0], "msg", parts[1]]
        if len(parts) != 3 or not all(parts):
            raise ImportError(f"{type_name!r} is not a ROS message type name") from None
        package, kind, name = parts
        module = importlib.import_module(f"{package}.{kind}")
        try:
            return getattr(module, name)
        except AttributeError:
            raise ImportError(f"{package}.{kind} has no message {name}") from None
    try:
        return get_message(type_name)
    except (AttributeError, ValueError, ModuleNotFoundError) as err:
        raise ImportError(str(err)) from err


def _bag_paths(path: Path) -> list[Path]:
    """AnyReader's paths (:func:`~liploc_ros.datasets.bag_paths.bag_reader_paths`: a bag
    folder, a bare .mcap, a folder of them), ROS 1 refused."""
    paths = bag_reader_paths(path)
    if any(p.suffix == ".bag" for p in paths):
        raise DatasetError(
            f"{path} is a ROS 1 bag: liploc play publishes ROS 2 bags only; convert it "
            "with rosbags-convert (pip install rosbags) first"
        )
    return paths


def _latched(connection: Any) -> bool:
    """/tf_static, or recorded with transient-local durability."""
    if connection.topic in LATCHED_TOPICS:
        return True
    profiles = getattr(connection.ext, "offered_qos_profiles", None) or []
    if isinstance(profiles, str):  # older rosbags: the YAML text of rosbag2's metadata
        text = profiles.replace(" ", "").lower()
        return "durability:1" in text or "transient_local" in text
    return any(getattr(getattr(p, "durability", None), "value", None) == 1 for p in profiles)


class BagPlayer:
    """Publishes one bag's messages on ``node``'s graph; see the module docstring.

    Construction opens the bag and creates the publishers (so that subscribers can match
    before :meth:`play`); ``on_publish(topic, bag_time_ns, raw)`` is called after each
    published message.
    """

    def __init__(
        self,
        node: Node,
        path: str | Path,
        options: PlayOptions = PlayOptions(),
        *,
        on_publish: Callable[[str, int, bytes], None] | None = None,
    ) -> None:
        from rosbags.highlevel import AnyReader

        self.node = node
        self.options = options
        self.path = Path(path).expanduser()
        self.paths = _bag_paths(self.path)
        self.on_publish = on_publish
        self.stats = PlayStats()
        try:
            self.reader = AnyReader(self.paths)
            self.reader.open()
        except Exception as err:
            raise DatasetError(f"cannot open bag {self.path}: {err}") from err
        try:
            self._select(options.topics)
        except BaseException:
            self.close()
            raise

    def _select(self, topics: Sequence[str]) -> None:
        available = sorted({c.topic for c in self.reader.connections})
        missing = sorted(set(topics) - set(available))
        if missing:
            raise ConfigError(
                f"bag {self.path} has no topic {', '.join(missing)}; it has: "
                f"{', '.join(available) or 'none'}"
            )
        self.connections: list[Any] = []
        self.latched: list[Any] = []
        self.publishers: dict[str, Any] = {}
        for conn in self.reader.connections:
            if topics and conn.topic not in topics:
                continue
            if conn.topic in self.stats.skipped:
                continue
            if conn.topic not in self.publishers:
                try:
                    cls = message_class(conn.msgtype)
                except ImportError as err:
                    self.stats.skipped[conn.topic] = f"{conn.msgtype} is not installed ({err})"
                    continue
                self.publishers[conn.topic] = self.node.create_publisher(
                    cls, conn.topic, self._qos(conn)
                )
            (self.latched if _latched(conn) else self.connections).append(conn)
        if not self.publishers:
            raise DatasetError(
                f"bag {self.path}: nothing to play"
                + (
                    f" (skipped: {'; '.join(f'{t}: {w}' for t, w in self.stats.skipped.items())})"
                    if self.stats.skipped
                    else ""
                )
            )
        self.clock_pub = None
        if self.options.clock:
            from rosgraph_msgs.msg import Clock

            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.clock_pub = self.node.create_publisher(Clock, "/clock", qos)
            self._clock_msg = Clock

    def _qos(self, conn: Any) -> QoSProfile:
        if _latched(conn):
            count = sum(c.msgcount for c in self.reader.connections if c.topic == conn.topic)
            return QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=max(1, count),
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
        # reliable publishers match best-effort and reliable subscribers alike
        return QoSProfile(depth=self.options.queue_depth, reliability=ReliabilityPolicy.RELIABLE)

    @property
    def topics(self) -> list[str]:
        return sorted(self.publishers)

    def subscriber_counts(self) -> dict[str, int]:
        return {t: p.get_subscription_count() for t, p in self.publishers.items()}

    def wait_for_subscribers(
        self, topics: Sequence[str], timeout: float, stop: threading.Event | None = None
    ) -> bool:
        """Wait up to ``timeout`` s until each of ``topics`` has a subscriber; True if so."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self.publishers[t].get_subscription_count() > 0 for t in topics):
                return True
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(0.05)

    def play(self, stop: threading.Event | None = None) -> PlayStats:
        """Publish the bag (again and again with ``loop``) until its end or ``stop``."""
        opts = self.options
        stop = stop or threading.Event()
        t_wall = time.monotonic()
        if self.latched:  # up front, whatever the start offset: they describe the whole bag
            for conn, t, raw in self.reader.messages(connections=self.latched):
                self._publish(conn.topic, t, raw)
        bag_start = self.reader.start_time + round(opts.start_offset * _NS)
        try:
            while not stop.is_set():
                self.stats.loops += 1
                self._play_once(bag_start, stop)
                if not opts.loop:
                    break
        except KeyboardInterrupt:
            self.stats.interrupted = True
            raise
        finally:
            self.stats.seconds = time.monotonic() - t_wall
        self.stats.interrupted = self.stats.interrupted or stop.is_set()
        return self.stats

    def _play_once(self, bag_start: int, stop: threading.Event) -> None:
        if not self.connections:  # AnyReader.messages(connections=()) would read every topic
            return
        rate = self.options.rate
        clock_period = 1.0 / self.options.clock_frequency
        nap = min(clock_period, 0.05) if self.clock_pub is not None else 0.05
        wall_start = time.monotonic()
        last_clock = -float("inf")
        for conn, t, raw in self.reader.messages(connections=self.connections, start=bag_start):
            due = wall_start + (t - bag_start) / _NS / rate
            while not stop.is_set():
                now = time.monotonic()
                if self.clock_pub is not None and now - last_clock >= clock_period:
                    played = bag_start + round((now - wall_start) * rate * _NS)
                    self._publish_clock(min(t, played))
                    last_clock = now
                if now >= due:
                    break
                time.sleep(min(due - now, nap))
            if stop.is_set():
                return
            if self.clock_pub is not None:  # ROS time reaches the message's time with it
                self._publish_clock(t)
                last_clock = time.monotonic()
            self._publish(conn.topic, t, raw)

    def _publish_clock(self, bag_ns: int) -> None:
        from builtin_interfaces.msg import Time

        sec, nanosec = divmod(int(bag_ns), _NS)
        assert self.clock_pub is not None  # called only when /clock is published
        self.clock_pub.publish(self._clock_msg(clock=Time(sec=sec, nanosec=nanosec)))

    def _publish(self, topic: str, t: int, raw: Any) -> None:
        data = raw if isinstance(raw, bytes) else bytes(raw)
        self.publishers[topic].publish(data)
        self.stats.published[topic] = self.stats.published.get(topic, 0) + 1
        if self.on_publish is not None:
            self.on_publish(topic, t, data)

    def close(self, *, ack_timeout: float = 1.0) -> None:
        """Close the bag and destroy the publishers, once the subscribers have acknowledged
        what was published (at most ``ack_timeout`` s per topic): a publisher destroyed right
        after its last message would otherwise take it along."""
        from rclpy.duration import Duration

        for pub in getattr(self, "publishers", {}).values():
            if self.stats.total:
                pub.wait_for_all_acked(Duration(seconds=ack_timeout))
            self.node.destroy_publisher(pub)
        clock_pub = getattr(self, "clock_pub", None)
        if clock_pub is not None:
            self.node.destroy_publisher(clock_pub)
        self.publishers = {}
        if self.reader.stack is not None:
            self.reader.close()

    def __enter__(self) -> BagPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def play_bag(
    path: str | Path,
    options: PlayOptions = PlayOptions(),
    *,
    wait_for_subscribers: float = 0.0,
    say: Callable[[str], None] = print,
) -> PlayStats:
    """``liploc play``: a node of its own, the bag played once (or looped until Ctrl-C).

    rclpy's signal handlers are left out, so Ctrl-C is a KeyboardInterrupt that the node
    and the context are cleaned up after.
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = Node("liploc_player", context=context)
    try:
        with BagPlayer(node, path, options) as player:
            for topic, why in player.stats.skipped.items():
                say(f"skipping {topic}: {why}")
            say(
                f"playing {player.path} ({player.reader.duration / 1e9:.1f} s, "
                f"{len(player.topics)} topics) at rate {options.rate:g}"
                f"{', looping' if options.loop else ''}"
                f"{', publishing /clock' if options.clock else ''}"
            )
            if wait_for_subscribers > 0 and not player.wait_for_subscribers(
                player.topics, wait_for_subscribers
            ):
                idle = [t for t, n in player.subscriber_counts().items() if n == 0]
                say(
                    f"no subscriber after {wait_for_subscribers:g} s on: {', '.join(idle)}; "
                    "playing anyway"
                )
            return player.play()
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
