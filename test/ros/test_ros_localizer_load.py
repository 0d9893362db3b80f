"""Load: camera frames for 60 s at three times the rate the node manages, whatever the
machine: the node's processing time is measured first (a few frames at 4 Hz, then 3 s kept
busy, from its /diagnostics: an idling node runs slower) and the camera rate set from it (at
least 30 Hz), so that the overload is real
on a slow two-core Xeon and on a fast AMX one alike, and on one core (``taskset -c 0``).

The node must drop frames rather than queue them, so the latency from an image's stamp to
its pose stays bounded by a few times the node's own processing time per frame, read from
its /diagnostics so that a slow or loaded machine moves the bound with it: the median
latency under 3x the mean processing time, the p99 latency under 3x the p99 processing
time (on a shared machine the processing time has a long tail of its own: other processes
take the cores for a while). The node's memory must not grow (resident set at 10 s and at
the end, from /proc).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from localizer_helpers import (
    STARTUP_S,
    GraphSide,
    NodeProcess,
    diagnostics_windows,
    make_map_file,
    make_model_file,
    measure_processing_ms,
    random_image,
    ros_environment,
    wait_until,
)
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from liploc_ros.ros import conversions as conv

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 161 + os.getpid() % 30  # 161..190
MIN_RATE_HZ = 30.0
OVERLOAD = 3.0  # the camera rate over the rate the node manages
DURATION_S = 60.0
TOPIC = "/camera/image_raw"
MAX_RSS_GROWTH_MB = 50.0


def test_three_times_the_nodes_rate_latency_stays_bounded_and_memory_flat(tmp_path, monkeypatch):
    env = ros_environment(DOMAIN_ID)
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        monkeypatch.setenv(key, env[key])
    # liploc-tiny (ResNet-18) at 320 px: 10 to 40 frames/s on two cores, so that the camera
    # rate (three times that) stays within what a Python publisher sends
    loaded = make_model_file(tmp_path / "model.safetensors", size=320)
    make_map_file(tmp_path / "map.lmap", loaded, n=500)
    params = {
        "model": tmp_path / "model.safetensors",
        "map_path": tmp_path / "map.lmap",
        "device": "cpu",
        "image_topics": [TOPIC],
        "mode": "single",  # a pose per frame: the latency is measured on poses
        "localizer.max_spread_m": 1e6,
    }
    node = NodeProcess(tmp_path, env, params)
    graph = GraphSide()
    try:
        graph.collect(PoseWithCovarianceStamped, "/localizer_node/pose", graph.got.poses, 1000)
        graph.collect(DiagnosticArray, "/diagnostics", graph.got.diagnostics, 100)
        pub = graph.node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
        wait_until(lambda: pub.get_subscription_count() > 0, STARTUP_S, "subscription", node)
        frames = [conv.rgb_to_image(random_image(i), "rgb8") for i in range(8)]

        def send(i: int) -> None:
            msg = frames[i % len(frames)]
            msg.header = Header(stamp=conv.seconds_to_stamp(time.time()), frame_id="camera")
            pub.publish(msg)

        probe_ms = measure_processing_ms(graph, node, send, busy_s=3.0)
        rate_hz = max(MIN_RATE_HZ, OVERLOAD * 1000.0 / probe_ms)
        dropped_before = int(diagnostics_windows(graph)[-1][f"{TOPIC}: dropped"])
        with graph.lock:  # the figures below are the load run's only
            graph.got.poses.clear()
            graph.got.diagnostics.clear()
        start = time.monotonic()
        sent, rss = 0, {}
        while (elapsed := time.monotonic() - start) < DURATION_S:
            send(sent)
            sent += 1
            if elapsed >= 10.0 and "10s" not in rss:
                rss["10s"] = node.rss_kib()
            next_at = start + sent / rate_hz
            time.sleep(max(0.0, next_at - time.monotonic()))
        rss["end"] = node.rss_kib()
        time.sleep(2.0)  # the last frame's pose and a diagnostics period
        node.assert_running()

        with graph.lock:
            latency_ms = np.array(
                [
                    1e3 * (r.wall - conv.stamp_to_seconds(r.msg.header.stamp))
                    for r in graph.got.poses
                ]
            )
        windows = diagnostics_windows(graph)
        counted = [
            (int(w["frames"]), float(w["processing_mean_ms"])) for w in windows if int(w["frames"])
        ]
        frames_done = sum(n for n, _ in counted)
        processing_ms = sum(n * ms for n, ms in counted) / frames_done
        last = windows[-1]
        processing_p99 = float(last["processing_p99_ms"])  # over the last 1000 frames: all
        p50, p99 = np.percentile(latency_ms, [50, 99])
        dropped = int(last[f"{TOPIC}: dropped"]) - dropped_before
        growth_mb = (rss["end"] - rss["10s"]) / 1024
        report = (
            f"probe: {probe_ms:.0f} ms/frame, so {rate_hz:.0f} Hz; sent {sent} frames "
            f"({sent / DURATION_S:.0f}/s); node localized {frames_done} "
            f"({frames_done / DURATION_S:.1f}/s), dropped {dropped} in its slot and "
            f"{sent - frames_done - dropped} before it; processing "
            f"{processing_ms:.0f} ms/frame mean, {processing_p99:.0f} ms p99; latency p50 "
            f"{p50:.0f} ms, p99 {p99:.0f} ms; "
            f"RSS {rss['10s'] / 1024:.0f} -> {rss['end'] / 1024:.0f} MB"
        )
        print(report)
        assert len(latency_ms) >= 0.9 * frames_done, report  # a pose per localized frame
        assert dropped > 0.3 * sent, report  # the node is slower than the camera: it drops
        # queued frames would wait for all those before them: latency would grow by seconds;
        # dropped ones wait at most for the frame in progress. The machine's own hiccups
        # (other processes) show in the processing time too, hence the same percentile.
        assert p50 < 3.0 * processing_ms, report
        assert p99 < 3.0 * processing_p99, report
        assert growth_mb < MAX_RSS_GROWTH_MB, report
    finally:
        graph.close()
        node.kill()
