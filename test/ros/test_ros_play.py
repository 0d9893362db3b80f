"""liploc play / BagPlayer: a bag written by rosbag_writer played onto a live graph.

Checked: messages arrive with the bag's stamps, at about the bag's pace times the rate
(bounded generously: a lower bound from the schedule, an upper one with seconds of slack),
the topic filter and start offset, /clock, latched topics for late subscribers, looping,
and the errors for what cannot be played.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from localizer_helpers import ROOT, GraphSide, wait_until
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, PointCloud2
from std_msgs.msg import String

from liploc_ros.errors import ConfigError, DatasetError
from liploc_ros.ros import conversions as conv
from liploc_ros.ros.bag_player import BagPlayer, PlayOptions, message_class

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("ros_env")]

DOMAIN_ID = 191 + os.getpid() % 20  # 191..210
FRAMES = 6
T0 = 100.0
IMAGE = "/kitti/camera_color_left/image_raw/compressed"
POINTS = "/kitti/velo/pointcloud"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """6 frames at 10 Hz (stamps 100.0 .. 100.5 s), JPEG images."""
    from liploc_ros.datasets.rosbag_writer import write_bag
    from liploc_ros.datasets.synthetic import make_drive

    drive = make_drive(seed=3, traversal=0, frames=FRAMES)
    out = tmp_path_factory.mktemp("bags") / "drive"
    return write_bag(drive, out, image_encoding="jpeg", progress=False, time_offset=T0)


@pytest.fixture
def graph():
    g = GraphSide("liploc_play_listener")
    yield g
    g.close()


@pytest.fixture
def player_node(ros_context):
    node = Node("liploc_test_player", context=ros_context)
    yield node
    node.destroy_node()


def _stamps(received) -> list[float]:
    return [round(conv.stamp_to_seconds(r.msg.header.stamp), 6) for r in received]


def _play(player_node, bag, options, listen_to, timeout=20.0):
    """Play; the stats and the monotonic time of each publication."""
    sent: list[float] = []
    with BagPlayer(player_node, bag, options) as player:
        assert player.wait_for_subscribers(listen_to, timeout), player.subscriber_counts()
        player.on_publish = lambda topic, t, raw: sent.append(time.monotonic())
        return player.play(), sent


def test_messages_arrive_with_the_bag_stamps_at_the_rate(player_node, graph, bag):
    images, clouds = [], []
    graph.collect(CompressedImage, IMAGE, images, RELIABLE)
    graph.collect(PointCloud2, POINTS, clouds, RELIABLE)
    stats, sent = _play(player_node, bag, PlayOptions(rate=0.5), [IMAGE, POINTS])
    wait_until(lambda: len(images) == len(clouds) == FRAMES, 10, "every image and cloud")
    expected = [round(T0 + 0.1 * i, 6) for i in range(FRAMES)]
    assert _stamps(images) == expected
    assert _stamps(clouds) == expected
    # 0.5 s of bag at half speed: 1 s. The player never publishes before a message is due
    # (a lower bound that holds on any machine), and a loaded one may be late (generous)
    assert 0.95 <= sent[-1] - sent[0] <= 6.0, sent
    assert 0.5 <= images[-1].wall - images[0].wall <= 6.5
    assert stats.seconds <= 7.0, stats.seconds
    assert stats.published[IMAGE] == FRAMES
    assert stats.loops == 1
    assert not stats.interrupted
    # the message content is the bag's: the JPEG decodes to the rendered frame's size
    assert conv.image_to_rgb(images[0].msg).shape[2] == 3


def test_fast_rate_topic_filter_start_offset_and_clock(player_node, graph, bag):
    images, clouds, clock = [], [], []
    graph.collect(PointCloud2, POINTS, clouds, RELIABLE)
    image_sub = graph.collect(CompressedImage, IMAGE, images, RELIABLE)
    clock_sub = graph.collect(Clock, "/clock", clock, RELIABLE)
    options = PlayOptions(rate=4.0, topics=(IMAGE,), start_offset=0.25, clock=True)
    with BagPlayer(player_node, bag, options) as player:
        assert player.topics == [IMAGE]
        assert player.wait_for_subscribers([IMAGE], 20)
        wait_until(lambda: player.clock_pub.get_subscription_count() > 0, 20, "/clock subscriber")
        # matched both ways: the play takes 60 ms, no time for late matching
        wait_until(lambda: image_sub.get_publisher_count() and clock_sub.get_publisher_count(), 20,
              "the subscribers matched")  # fmt: skip
        stats = player.play()
    wait_until(lambda: len(images) >= 3, 10, f"the images after the offset: {_stamps(images)}")
    time.sleep(0.3)
    assert _stamps(images) == [100.3, 100.4, 100.5]
    assert stats.seconds < 5.0  # 0.25 s of bag at 4x: 0.06 s, with slack for a loaded machine
    time.sleep(0.3)
    assert clouds == []  # filtered out
    times = [conv.stamp_to_seconds(r.msg.clock) for r in clock]
    assert times, "no /clock"
    assert times == sorted(times)
    assert T0 + 0.25 <= times[0] <= T0 + 0.3
    assert times[-1] == pytest.approx(T0 + 0.5)  # the clock reaches each message's time


def test_a_bare_mcap_and_a_folder_of_them_play_like_the_bag(player_node, graph, bag, tmp_path):
    """kitti2mcap writes one .mcap without metadata.yaml: liploc play takes it as it is."""
    import shutil

    (storage,) = bag.glob("*.mcap")
    lone = tmp_path / "converted"
    lone.mkdir()
    bare = lone / "drive.mcap"
    shutil.copyfile(storage, bare)
    for path in (bare, lone):
        images = []
        sub = graph.collect(CompressedImage, IMAGE, images, RELIABLE)
        with BagPlayer(player_node, path, PlayOptions(rate=4.0, topics=(IMAGE,))) as player:
            assert player.paths == [bare]
            assert player.wait_for_subscribers([IMAGE], 20)
            wait_until(lambda s=sub: s.get_publisher_count(), 20, "the subscriber matched")
            stats = player.play()
        wait_until(lambda i=images: len(i) >= FRAMES, 10, f"every image of {path}")
        assert _stamps(images) == [round(T0 + 0.1 * i, 6) for i in range(FRAMES)]
        assert stats.published[IMAGE] == FRAMES
        graph.node.destroy_subscription(sub)


def _write_latched_bag(path: Path) -> Path:
    """A bag with a transient-local /latched topic (recorded so) and a plain /chatter."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    string = store.types["std_msgs/msg/String"]
    latched_qos = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE,
                      QosDurability.TRANSIENT_LOCAL, QosTime(0, 0), QosTime(0, 0),
                      QosLiveliness.AUTOMATIC, QosTime(0, 0), False)  # fmt: skip
    with Writer(path, version=9) as writer:
        latched = writer.add_connection(
            "/latched", string.__msgtype__, typestore=store, offered_qos_profiles=[latched_qos]
        )
        chatter = writer.add_connection("/chatter", string.__msgtype__, typestore=store)
        for i in range(3):
            t = int((T0 + 0.05 * i) * 1e9)
            writer.write(
                chatter, t, store.serialize_cdr(string(data=f"hello {i}"), "std_msgs/msg/String")
            )
        writer.write(
            latched,
            int(T0 * 1e9),
            store.serialize_cdr(string(data="map is ready"), "std_msgs/msg/String"),
        )
    return path


def test_latched_topics_reach_late_subscribers(player_node, graph, tmp_path):
    bag = _write_latched_bag(tmp_path / "latched")
    with BagPlayer(player_node, bag, PlayOptions(rate=10.0)) as player:
        stats = player.play()
        assert stats.published == {"/latched": 1, "/chatter": 3}
        late_latched, late_chatter = [], []
        graph.collect(String, "/latched", late_latched, LATCHED)
        graph.collect(String, "/chatter", late_chatter, RELIABLE)
        wait_until(lambda: late_latched, 10, "the latched message")
        assert [r.msg.data for r in late_latched] == ["map is ready"]
        time.sleep(0.3)
        assert late_chatter == []  # not latched: gone for a late subscriber


def test_loop_plays_again_until_stopped(player_node, graph, bag):
    images = []
    graph.collect(CompressedImage, IMAGE, images, RELIABLE)
    stop = threading.Event()
    options = PlayOptions(rate=5.0, topics=(IMAGE,), loop=True)
    with BagPlayer(player_node, bag, options) as player:
        assert player.wait_for_subscribers([IMAGE], 20)
        threading.Thread(
            target=lambda: (
                wait_until(lambda: len(images) >= 2 * FRAMES + 1, 20, "a loop"),
                stop.set(),
            ),
            daemon=True,
        ).start()
        stats = player.play(stop)
    assert stats.loops >= 3
    assert stats.interrupted
    stamps = _stamps(images)
    assert stamps[: 2 * FRAMES] == [round(T0 + 0.1 * (i % FRAMES), 6) for i in range(2 * FRAMES)]


def test_what_cannot_be_played(player_node, bag, tmp_path):
    with pytest.raises(ConfigError, match=r"has no topic /nope; it has: .*/kitti/velo/pointcloud"):
        BagPlayer(player_node, bag, PlayOptions(topics=("/nope",)))
    ros1 = tmp_path / "old.bag"
    ros1.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(DatasetError, match=r"ROS 1 bag.*rosbags-convert"):
        BagPlayer(player_node, ros1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"without metadata\.yaml"):
        BagPlayer(player_node, tmp_path / "empty")
    with pytest.raises(DatasetError, match="no bag at"):
        BagPlayer(player_node, tmp_path / "missing")
    for bad in ({"rate": 0.0}, {"start_offset": -1.0}, {"queue_depth": 0}):
        with pytest.raises(ConfigError):
            PlayOptions(**bad)
    # a message package that is not installed: the topic is skipped and said so
    try:
        message_class("tf2_msgs/msg/TFMessage")
        tf2_installed = True
    except ImportError:
        tf2_installed = False
    with BagPlayer(player_node, bag) as player:
        if tf2_installed:
            assert "/tf" in player.topics
        else:
            assert "tf2_msgs/msg/TFMessage is not installed" in player.stats.skipped["/tf"]
            assert "/tf" not in player.topics
        assert IMAGE in player.topics
    assert message_class("sensor_msgs/msg/Image").__name__ == "Image"
    with pytest.raises(ImportError):
        message_class("sensor_msgs/msg/NoSuchMessage")


@pytest.mark.slow
def test_the_play_command(graph, bag, ros_env):
    images = []
    graph.collect(CompressedImage, IMAGE, images, RELIABLE)
    args = [sys.executable, "-m", "liploc_ros.cli", "play", str(bag), "--rate", "2",
            "--topics", IMAGE, "--wait-for-subscribers", "30"]  # fmt: skip
    done = subprocess.run(
        args, env=ros_env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"{IMAGE}: {FRAMES} messages" in done.stdout, done.stdout
    wait_until(lambda: len(images) == FRAMES, 10, "the played images")
    assert _stamps(images) == [round(T0 + 0.1 * i, 6) for i in range(FRAMES)]
    missing = subprocess.run(
        [sys.executable, "-m", "liploc_ros.cli", "play", str(bag), "--topics", "/nope"],
        env=ros_env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "has no topic /nope" in missing.stderr
