"""localizer_node as a real process: poses per frame, bad input, several cameras, RViz
markers, the initial pose, fatal start-up errors; tf and the services in-process.

The node runs with ``python -m liploc_ros.ros.localizer_node --ros-args ...`` on a ROS
domain of this module's own (discovery limited to this host); the test publishes camera
frames with rclpy. The model is a small untrained one and the map holds random embeddings
made for it (its fingerprint): retrieval quality is not the question here, the node's
behaviour is. ``localizer.max_spread_m`` is raised so that every frame gets a fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from localizer_helpers import (
    ROOT,
    STARTUP_S,
    GraphSide,
    NodeProcess,
    main_args,
    make_map_file,
    make_model_file,
    measure_processing_ms,
    node_diagnostics,
    random_image,
    wait_until,
)
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from liploc_ros.ros import conversions as conv

pytestmark = pytest.mark.ros

DOMAIN_ID = 101 + os.getpid() % 60  # 101..160: apart from the other node tests
RAW, JPEG = "/cam_front/image_raw", "/cam_rear/image_raw/compressed"
LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
T0 = 5000.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("localizer")
    loaded = make_model_file(folder / "tiny.safetensors", size=64)
    make_map_file(folder / "town.lmap", loaded)
    return folder / "tiny.safetensors", folder / "town.lmap", folder


def _params(model: Path, map_path: Path, **extra) -> dict:
    return {
        "model": model,
        "map_path": map_path,
        "device": "cpu",
        "mode": "single",  # every frame alone (sequence mode: test_ros_localizer_sequence.py)
        "localizer.max_spread_m": 1000.0,  # random embeddings: every frame gets a fix
        "diagnostics_period": 0.5,
        "discovery_period": 0.2,
        **extra,
    }


@pytest.fixture(scope="module")
def node(files, ros_env, tmp_path_factory):
    """One node for the module: two cameras (raw, compressed), every output on."""
    model, map_path, _ = files
    params = _params(
        model,
        map_path,
        image_topics=[RAW, JPEG],
        publish_odom=True,
        publish_initialpose=True,
        initialpose_min_confidence=0.0,
        warn_period=30.0,  # one warning per cause for the whole module, however slow
    )
    proc = NodeProcess(
        tmp_path_factory.mktemp("log"),
        ros_env,
        params,
        params_file=ROOT / "config" / "localizer.yaml",
    )
    yield proc
    proc.kill()


@pytest.fixture
def graph(ros_env):
    g = GraphSide()
    yield g
    g.close()


def _image(camera: str, seed: int, stamp: float):
    header = Header(stamp=conv.seconds_to_stamp(stamp), frame_id=camera.split("/")[1])
    rgb = random_image(seed)
    if camera == JPEG:
        return conv.rgb_to_compressed_image(rgb, "jpeg", header=header)
    return conv.rgb_to_image(rgb, "bgr8", header=header)


def _publishers(graph: GraphSide, node: NodeProcess):
    pubs = {
        RAW: graph.node.create_publisher(Image, RAW, qos_profile_sensor_data),
        JPEG: graph.node.create_publisher(CompressedImage, JPEG, qos_profile_sensor_data),
    }
    wait_until(
        lambda: all(p.get_subscription_count() > 0 for p in pubs.values()),
        STARTUP_S,
        "the node's camera subscriptions",
        node,
    )
    return pubs


def _stamps(received) -> list[float]:
    return [conv.stamp_to_seconds(r.msg.header.stamp) for r in received]


@pytest.mark.slow
def test_a_pose_per_frame_with_the_image_stamp_in_map_and_a_valid_covariance(node, graph):
    graph.collect(PoseWithCovarianceStamped, "/localizer_node/pose", graph.got.poses, 100)
    graph.collect(DiagnosticArray, "/diagnostics", graph.got.diagnostics)
    odoms = []
    graph.collect(Odometry, "/localizer_node/odom", odoms, 100)
    pubs = _publishers(graph, node)
    wait_until(lambda: node_diagnostics(graph), 10, "diagnostics", node)
    assert node_diagnostics(graph)["total_frames"] == "0"  # the module's first test: the node's
    # first frames, and so its first confident fix for /initialpose below
    sent = []
    for i in range(10):  # one frame at a time, each once the previous one has its pose
        stamp = T0 + 0.25 * i
        pubs[RAW].publish(_image(RAW, i, stamp))
        sent.append(stamp)
        wait_until(lambda n=i + 1: len(graph.got.poses) >= n, 30, f"pose {i}", node)
    wait_until(
        lambda: node_diagnostics(graph).get("total_frames") == str(len(sent)),
        10,
        "the diagnostics of the last frame",
        node,
    )
    assert _stamps(graph.got.poses) == pytest.approx(sent, abs=1e-9)
    for received in graph.got.poses:
        msg = received.msg
        assert msg.header.frame_id == "map"
        cov = np.reshape(msg.pose.covariance, (6, 6))
        np.testing.assert_allclose(cov, cov.T)
        assert np.linalg.eigvalsh(cov).min() > 0, cov
        assert cov[0, 0] >= 5.0**2  # the core's floor: place recognition is metres
        # the map's LiDAR poses sit at z = 0: base_link is 1.73 m below (the default mount)
        assert msg.pose.pose.position.z == pytest.approx(-1.73)
    assert _stamps(odoms) == pytest.approx(sent)
    assert {o.msg.child_frame_id for o in odoms} == {"base_link"}
    d = node_diagnostics(graph)
    assert d["total_fixes"] == d["total_frames"] == str(len(sent))

    # late subscribers with transient local get the map route (published once) and the
    # last match; the first confident fix went to /initialpose
    markers, initial = [], []
    graph.collect(MarkerArray, "/localizer_node/markers", markers, LATCHED)
    graph.collect(PoseWithCovarianceStamped, "/initialpose", initial, LATCHED)
    wait_until(lambda: len(markers) >= 2 and initial, 10, "latched markers", node)
    kinds = {m.ns: m.type for r in markers for m in r.msg.markers}
    assert kinds["liploc_map_route"] == Marker.LINE_STRIP
    assert "liploc_match" in kinds
    (first,) = initial
    assert first.msg.header.frame_id == "map"
    assert conv.stamp_to_seconds(first.msg.header.stamp) == pytest.approx(sent[0])

    # ~/publish_initialpose sends the latest confident fix again
    from std_srvs.srv import Trigger

    client = graph.node.create_client(Trigger, "/localizer_node/publish_initialpose")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    wait_until(future.done, 10, "the service answer", node)
    assert future.result().success, future.result().message
    wait_until(lambda: len(initial) == 2, 10, "a second initial pose", node)
    assert conv.stamp_to_seconds(initial[1].msg.header.stamp) == pytest.approx(sent[-1])


@pytest.mark.slow
def test_bad_frames_are_warned_about_per_cause_and_the_node_carries_on(node, graph):
    graph.collect(PoseWithCovarianceStamped, "/localizer_node/pose", graph.got.poses, 100)
    pubs = _publishers(graph, node)
    good = _image(RAW, 1, T0 + 100)
    bad = {
        "unsupported encoding": Image(
            header=good.header, height=4, width=4, encoding="yuv422", step=8, data=bytes(32)
        ),
        "zero-size image": Image(header=good.header, height=0, width=0, encoding="rgb8"),
        "wrong step": Image(
            header=good.header, height=4, width=4, encoding="rgb8", step=11, data=bytes(44)
        ),
        "corrupt compressed image": CompressedImage(
            header=good.header, format="jpeg", data=b"\xff\xd8\xff\xe0 not a jpeg"
        ),
    }
    graph.collect(DiagnosticArray, "/diagnostics", graph.got.diagnostics)
    for cause, msg in bad.items():
        pub = pubs[JPEG] if isinstance(msg, CompressedImage) else pubs[RAW]
        for count in (1, 2, 3):  # three times within warn_period: one warning
            pub.publish(msg)
            wait_until(
                lambda c=cause, n=count: node_diagnostics(graph).get(f"warnings: {c}") == str(n),
                30,
                f"{cause} #{count} in /diagnostics",
                node,
            )
    after = _image(RAW, 2, T0 + 101)
    pubs[RAW].publish(after)
    wait_until(
        lambda: T0 + 101 in [round(s, 6) for s in _stamps(graph.got.poses)],
        20,
        "a pose for the good frame after the bad ones",
        node,
    )
    node.assert_running()
    log = node.log
    for cause in bad:
        lines = [line for line in log.splitlines() if f"[{cause}: " in line]
        assert len(lines) == 1, f"{cause}: {lines}\n{log}"
        assert "[WARN]" in lines[0]
        assert "dropped" in lines[0]
    assert "yuv422" in log
    assert re.search(r"/cam_front/image_raw: frame at 5100\.000 s dropped: .*step 11", log)


@pytest.mark.slow
def test_two_cameras_raw_and_compressed_both_get_poses(node, graph):
    """Each camera at 1.5 times the rate the node manages (at least 30 Hz; measured first,
    kept busy, so on any machine): together three times too fast, so frames are dropped,
    not queued, and neither camera starves."""
    graph.collect(PoseWithCovarianceStamped, "/localizer_node/pose", graph.got.poses, 1000)
    graph.collect(DiagnosticArray, "/diagnostics", graph.got.diagnostics)
    pubs = _publishers(graph, node)
    frames = {
        RAW: [_image(RAW, i, 0.0) for i in range(4)],
        JPEG: [_image(JPEG, i, 0.0) for i in range(4)],
    }

    def probe(i: int) -> None:
        msg = frames[RAW][i % 4]
        msg.header.stamp = conv.seconds_to_stamp(6000.0 + i)
        pubs[RAW].publish(msg)

    processing_ms = measure_processing_ms(graph, node, probe, busy_s=2.0)
    rate_hz = max(30.0, 1.5 * 1000.0 / processing_ms)
    dropped_before = {c: int(node_diagnostics(graph)[f"{c}: dropped"]) for c in (RAW, JPEG)}
    with graph.lock:
        graph.got.poses.clear()
    start = time.time()
    stamps = {RAW: set(), JPEG: set()}
    t, sent = 7000.0, 0
    while time.time() - start < 5.0:
        for k, camera in enumerate((RAW, JPEG)):
            msg = frames[camera][sent % 4]
            stamp = round(t + 0.001 * k, 6)  # raw and compressed frames told apart by stamp
            msg.header.stamp = conv.seconds_to_stamp(stamp)
            pubs[camera].publish(msg)
            stamps[camera].add(stamp)
        t += 1.0 / rate_hz
        sent += 1
        time.sleep(max(0.0, start + sent / rate_hz - time.time()))
    time.sleep(2.0)
    got = [round(s, 6) for s in _stamps(graph.got.poses)]
    per_camera = {c: sum(s in stamps[c] for s in got) for c in stamps}
    total = sum(per_camera.values())
    report = f"{processing_ms:.0f} ms/frame, {rate_hz:.0f} Hz per camera: {per_camera}"
    assert total > 10, report
    for camera, count in per_camera.items():
        assert count >= 0.3 * total, report
        assert count < len(stamps[camera]), f"{camera}: every frame localized? {report}"
    d = node_diagnostics(graph)
    assert int(d[f"{RAW}: dropped"]) > dropped_before[RAW], d
    assert int(d[f"{JPEG}: dropped"]) > dropped_before[JPEG], d


@pytest.mark.slow
def test_a_missing_map_ends_the_process_with_exit_code_1(files, ros_env, tmp_path):
    model, _, _ = files
    proc = NodeProcess(tmp_path, ros_env, _params(model, tmp_path / "nope.lmap"))
    try:
        assert proc.proc.wait(STARTUP_S) == 1, proc.log
        assert re.search(r"\[FATAL\] .*\[localizer_node\]: map file .*nope.lmap does not exist",
                         proc.log), proc.log  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node did not exit:\n{proc.log}") from None
    finally:
        proc.kill()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("corrupt map", r"map file .*corrupt.lmap"),
        ("another model", r"was built with model 'liploc-tiny' \(fingerprint [0-9a-f]{16}\)"),
        ("corrupt model", r"other.safetensors is truncated or not a safetensors file"),
        ("bad parameter", r"parameter 'localizer.top_k': top_k must be a positive integer"),
        ("bad ros args", "cannot start"),
    ],
)
def test_fatal_start_up_errors_return_1_with_a_clear_message(
    files, tmp_path, capfd, case, message
):
    from liploc_ros.ros.localizer_node import main

    model, map_path, _ = files
    corrupt_map = tmp_path / "corrupt.lmap"
    corrupt_map.write_bytes(map_path.read_bytes()[:200])
    other = tmp_path / "other.safetensors"
    if case == "another model":
        make_model_file(other, size=64, seed=1)  # same architecture, other weights
    else:
        other.write_bytes(b"\x00\x10\x00\x00\x00\x00\x00\x00{not json}")
    params = {
        "corrupt map": _params(model, corrupt_map),
        "another model": _params(other, map_path),
        "corrupt model": _params(other, map_path),
        "bad parameter": _params(model, map_path, **{"localizer.top_k": 0}),
        "bad ros args": _params(model, map_path),
    }[case]
    args = main_args("localizer_node", params) + (
        ["-p", "broken"] if case == "bad ros args" else []
    )
    assert main(args) == (2 if case == "bad ros args" else 1)
    err = capfd.readouterr().err
    assert re.search(message, err), err
    if case != "bad ros args":
        assert "[FATAL]" in err, err


# -- in-process: tf, the initial pose service before any fix -------------------------------


def _in_process_node(context, params: dict):
    from rclpy.parameter import Parameter

    from liploc_ros.ros.localizer_node import LocalizerNode

    overrides = [
        Parameter(k, value=str(v) if isinstance(v, Path) else v) for k, v in params.items()
    ]
    return LocalizerNode(context=context, parameter_overrides=overrides)


def _process(node, camera: str, msg) -> None:
    from liploc_ros.ros.frame_slots import TakenFrame

    node.runtime._process(TakenFrame(camera, msg, 0.0, 0.0))


def test_publish_tf_broadcasts_map_to_odom_from_the_fix(files, ros_context, fake_tf2_ros):
    from scipy.spatial.transform import Rotation

    T_odom_base = np.eye(4)
    T_odom_base[:3, :3] = Rotation.from_euler("z", 25, degrees=True).as_matrix()
    T_odom_base[:3, 3] = (3.0, -2.0, 0.0)
    fake = fake_tf2_ros("odom", "base_link", {T0 + 7: T_odom_base})
    model, map_path, _ = files
    node = _in_process_node(
        ros_context, _params(model, map_path, publish_tf=True, image_topics=[RAW])
    )
    poses = []
    node.runtime.pose_pub.publish = poses.append  # what the node publishes, without a graph
    try:
        _process(node, RAW, _image(RAW, 3, T0 + 7))
        (pose,) = poses
        T_map_base = conv.pose_to_matrix(pose.pose.pose)
        (tf,) = fake.sent
        assert (tf.header.frame_id, tf.child_frame_id) == ("map", "odom")
        # post-dated by transform_tolerance, like AMCL
        assert conv.stamp_to_seconds(tf.header.stamp) == pytest.approx(T0 + 7 + 0.1)
        T_map_odom = conv.transform_to_matrix(tf.transform)
        np.testing.assert_allclose(T_map_odom @ T_odom_base, T_map_base, atol=1e-9)
        assert node.runtime._tf.buffer.lookups == [("odom", "base_link", round((T0 + 7) * 1e9))]
    finally:
        node.close()
        node.destroy_node()


def test_tf_odometry_and_publish_tf_share_one_tf_listener(files, ros_context, fake_tf2_ros):
    fake = fake_tf2_ros("odom", "base_link", {T0 + 7: np.eye(4)})
    model, map_path, _ = files
    params = _params(model, map_path, publish_tf=True, image_topics=[RAW], mode="sequence",
                     odometry_source="tf")  # fmt: skip
    node = _in_process_node(ros_context, params)
    try:
        assert node.runtime.tracking is not None
        assert node.runtime._tf is not None
        assert len(fake.listeners) == 1
        assert fake.listeners[0].buffer is node.runtime._tf.buffer
        assert node.runtime.tracking.odometry.at(T0 + 7) is not None  # read from that one buffer
        assert node.runtime._tf.buffer.lookups[-1][:2] == ("odom", "base_link")
    finally:
        node.close()
        node.destroy_node()


def test_publish_tf_without_tf2_ros_says_so_once(files, ros_context, without_tf2_ros, capfd):
    model, map_path, _ = files
    node = _in_process_node(ros_context, _params(model, map_path, publish_tf=True))
    try:
        assert node.runtime._tf is None
        err = capfd.readouterr().err
        assert err.count("publish_tf is unavailable: tf2_ros is not installed") == 1, err
        # the initial pose service before any confident fix: a clear no
        from std_srvs.srv import Trigger

        answer = node.runtime.requests._on_publish_initialpose(
            Trigger.Request(), Trigger.Response()
        )
        assert not answer.success
        assert "no fix with confidence" in answer.message
    finally:
        node.close()
        node.destroy_node()
