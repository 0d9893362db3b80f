"""The localizer node's parts, without a running graph: newest-frame slots, throttled
warnings, bad-image causes, statistics, messages, the
parameters and their YAML file."""

from __future__ import annotations

import argparse
import math
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from liploc_ros.errors import ConfigError
from liploc_ros.localization.config import LocalizerConfig
from liploc_ros.ros.frame_slots import LatestFrameSlots
from liploc_ros.ros.localizer_stats import LocalizerStats
from liploc_ros.ros.throttle import WarningThrottle

ROOT = Path(__file__).resolve().parents[2]


def _pose(x, y, z=0.0, roll=0.0, pitch=0.0, yaw=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [roll, pitch, yaw], degrees=True).as_matrix()
    T[:3, 3] = (x, y, z)
    return T


# -- newest-frame slots ---------------------------------------------------------------------


def test_a_slot_keeps_only_the_newest_frame_and_counts_the_dropped():
    slots = LatestFrameSlots(["cam"])
    assert slots.put("cam", 1) is False
    assert slots.put("cam", 2) is True
    assert slots.put("cam", 3) is True
    taken = slots.take(timeout=0)
    assert (taken.camera, taken.item) == ("cam", 3)
    assert slots.take(timeout=0) is None
    counts = slots.counts()["cam"]
    assert (counts.received, counts.taken, counts.dropped) == (3, 1, 2)


def test_the_camera_waiting_longest_is_served_first(clock):
    slots = LatestFrameSlots(["fast", "slow"], clock=clock)
    slots.put("fast", "f0")
    clock.t = 1.0
    slots.put("slow", "s0")
    clock.t = 2.0
    slots.put("fast", "f1")  # replaces f0 but the camera keeps waiting since t = 0
    first = slots.take(timeout=0)
    assert (first.camera, first.item, first.waited) == ("fast", "f1", 2.0)
    assert slots.take(timeout=0).camera == "slow"


def test_a_fast_camera_does_not_starve_a_slow_one(clock):
    """30 Hz and 5 Hz cameras into a consumer that manages 10 frames/s (clock ticks of
    1/30 s): the slow camera gets every one of its frames, the fast one the rest."""
    slots = LatestFrameSlots(["fast", "slow"], clock=clock)
    served = {"fast": 0, "slow": 0}
    for tick in range(300):  # 10 s
        clock.t = tick
        slots.put("fast", tick)
        if tick % 6 == 0:
            slots.put("slow", tick)
        if tick % 3 == 0:  # the consumer is free every 3 ticks
            served[slots.take(timeout=0).camera] += 1
    assert served == {"fast": 50, "slow": 50}
    counts = slots.counts()
    assert counts["slow"].dropped == 0
    assert counts["fast"].dropped == 300 - 50 - 1  # one still waiting at the end


def test_take_waits_for_a_frame_and_close_wakes_it():
    slots = LatestFrameSlots(["cam"])
    threading.Timer(0.1, slots.put, args=("cam", "x")).start()
    t0 = time.monotonic()
    assert slots.take(timeout=5).item == "x"
    assert time.monotonic() - t0 < 4
    results = []
    waiter = threading.Thread(target=lambda: results.append(slots.take(timeout=30)))
    waiter.start()
    time.sleep(0.1)
    slots.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert results == [None]


# -- throttled warnings ---------------------------------------------------------------------


def test_warnings_are_throttled_per_cause_with_counts(clock):
    lines = []
    throttle = WarningThrottle(lines.append, 5.0, clock=clock)
    assert throttle.warn("wrong step", "a")
    assert not throttle.warn("wrong step", "b")
    assert not throttle.warn("wrong step", "c")
    assert throttle.warn("corrupt compressed image", "jpeg")  # another cause: not throttled
    clock.t = 5.0
    assert throttle.warn("wrong step", "d")
    assert lines == [
        "a [wrong step: 1 in all]",
        "jpeg [corrupt compressed image: 1 in all]",
        "d [wrong step: 4 in all, 2 more since the last warning]",
    ]
    assert throttle.counts() == {"wrong step": 4, "corrupt compressed image": 1}


# -- statistics -----------------------------------------------------------------------------


def test_statistics_windows_reset_and_totals_do_not(clock):
    stats = LocalizerStats(clock=clock)
    for i in range(4):
        stats.record(ok=i != 3, score=float(i), confidence=0.5, latency_ms=10.0 * (i + 1),
                     processing_ms=100.0)  # fmt: skip
    stats.record_bad()
    clock.t = 2.0
    w = stats.window()
    assert (w.frames, w.fixes, w.total_frames, w.total_bad) == (4, 3, 4, 1)
    assert w.rate_hz == pytest.approx(2.0)
    assert w.fix_ratio == pytest.approx(0.75)
    assert w.latency_p50_ms == pytest.approx(25.0)
    assert w.latency_max_ms == pytest.approx(40.0)
    assert w.processing_mean_ms == pytest.approx(100.0)
    assert w.score_mean == pytest.approx(1.5)
    clock.t = 3.0
    stats.record(ok=True, score=1.0, confidence=1.0, latency_ms=1.0, processing_ms=500.0)
    w = stats.window()
    assert (w.frames, w.total_frames, w.total_fixes) == (1, 5, 4)
    assert w.processing_mean_ms == pytest.approx(500.0)
    # the running percentile spans periods: 4 frames of 100 ms and one of 500 ms
    assert w.processing_p99_ms == pytest.approx(np.percentile([100] * 4 + [500], 99))
    clock.t = 4.0
    w = stats.window()
    assert (w.frames, w.total_frames, w.total_fixes) == (0, 5, 4)
    assert math.isnan(w.fix_ratio)
    assert w.period_s == pytest.approx(1.0)
    assert w.processing_p99_ms == pytest.approx(np.percentile([100] * 4 + [500], 99))


# -- parameters and their file --------------------------------------------------------------


def test_the_node_config_rejects_what_cannot_work():
    from liploc_ros.config import from_dict
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig

    good = {"model": "m.safetensors", "map_path": "m.lmap"}
    cfg = from_dict(LocalizerNodeConfig, good)
    assert cfg.base_to_lidar == (0.0, 0.0, 1.73, 0.0, 0.0, 0.0)  # the bag writer's mount
    assert cfg.image_topics == ("/kitti/camera_color_left/image_raw",)
    cases = {
        "model": ({"map_path": "m"}, "model must name"),
        "map": ({"model": "m"}, "map_path must name"),
        "no topics": ({**good, "image_topics": []}, "image_topics must list"),
        "twice": ({**good, "image_topics": ["/a", "/a"]}, "twice"),
        "mount": ({**good, "base_to_lidar": [1.0, 2.0]}, "base_to_lidar"),
        "confidence": ({**good, "initialpose_min_confidence": 1.5}, "initialpose_min_conf"),
        "period": ({**good, "diagnostics_period": 0.0}, "diagnostics_period"),
        "localizer": ({**good, "localizer": {"top_k": 0}}, "top_k"),
    }
    for data, message in cases.values():
        with pytest.raises(ConfigError, match=message):
            from_dict(LocalizerNodeConfig, data)


def _flatten(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


@pytest.mark.ros
def test_the_yaml_file_sets_every_parameter_with_a_comment():
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from liploc_ros.config_fields import config_docs
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig
    from liploc_ros.ros.params import parameter_names

    path = ROOT / "config" / "localizer.yaml"
    text = path.read_text()
    params = yaml.safe_load(text)["localizer_node"]["ros__parameters"]
    names = set(parameter_names(LocalizerNodeConfig))
    in_file = _flatten(params)
    assert in_file == names
    assert set(config_docs(LocalizerNodeConfig)) == names  # the texts of `ros2 param describe`
    # a comment on every key
    for line in text.splitlines():
        key = re.match(r"^\s+([a-z_]+):(.*)$", line)
        if key and key.group(1) not in ("ros__parameters", "localizer"):
            assert "#" in key.group(2), f"no comment: {line}"
    # the file's values make a valid config, and liploc localize --config reads it
    from liploc_ros.cli.localize_config import read_config_file
    from liploc_ros.config import from_dict

    cfg = from_dict(LocalizerNodeConfig, {**params, "model": "m", "map_path": "m"})
    assert cfg.localizer == LocalizerConfig(**read_config_file(path))
    # the sequence section states the filter's defaults, and liploc localize reads it alike
    from liploc_ros.cli.localize_config import sequence_config
    from liploc_ros.localization.sequence_config import SequenceConfig

    assert cfg.mode == "sequence"
    assert cfg.sequence == SequenceConfig() == sequence_config(argparse.Namespace(config=path))


# -- messages and bad images (need the ROS message packages) --------------------------------


@pytest.fixture
def ros_messages():
    pytest.importorskip("rclpy", reason="rclpy is not installed")


@pytest.mark.ros
def test_bad_images_are_sorted_into_causes(ros_messages, monkeypatch):
    from sensor_msgs.msg import CompressedImage

    from liploc_ros.ros import conversions as conv
    from liploc_ros.ros import image_input as ii

    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # as on a pip-only install
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    good = conv.rgb_to_image(rgb)
    np.testing.assert_array_equal(ii.decode_image(good), rgb)
    jpeg = conv.rgb_to_compressed_image(rgb, "png")
    np.testing.assert_array_equal(ii.decode_image(jpeg), rgb)

    def bad(**fields):
        msg = conv.rgb_to_image(rgb)
        for k, v in fields.items():
            setattr(msg, k, v)
        return msg

    cases = [
        (bad(encoding="yuv422"), ii.UNSUPPORTED_ENCODING, "yuv422"),
        (bad(height=0, data=b""), ii.ZERO_SIZE, "zero size"),
        (bad(step=20, data=bytes(20 * 6)), ii.WRONG_STEP, "step 20 is smaller"),
        (bad(data=bytes(50)), ii.BAD_BUFFER_SIZE, "too short"),
        (CompressedImage(format="jpeg", data=b"\xff\xd8\xff garbage"), ii.CORRUPT_COMPRESSED,
         "cannot decode"),
        (CompressedImage(format="jpeg", data=b""), ii.CORRUPT_COMPRESSED, "no data"),
    ]  # fmt: skip
    for msg, cause, text in cases:
        with pytest.raises(ii.BadImageError, match=text) as info:
            ii.decode_image(msg)
        assert info.value.cause == cause


@pytest.mark.ros
def test_pose_and_odometry_messages(ros_messages):
    from builtin_interfaces.msg import Time

    from liploc_ros.ros import localizer_messages as msgs
    from liploc_ros.ros.conversions import pose_to_matrix

    T = _pose(1, 2, 3, roll=1, pitch=2, yaw=30)
    cov = np.diag([1.0, 2, 3, 4, 5, 6])
    cov[0, 1] = cov[1, 0] = 0.5
    stamp = Time(sec=12, nanosec=5)
    msg = msgs.pose_message(T, cov, stamp, "map")
    assert msg.header.frame_id == "map"
    assert msg.header.stamp == stamp
    np.testing.assert_allclose(pose_to_matrix(msg.pose.pose), T, atol=1e-12)
    np.testing.assert_allclose(np.reshape(msg.pose.covariance, (6, 6)), cov)
    odom = msgs.odometry_message(T, cov, stamp, "map", "base_link")
    assert odom.child_frame_id == "base_link"
    np.testing.assert_allclose(odom.pose.covariance, msg.pose.covariance)
    assert odom.twist.covariance[0] == msgs.UNKNOWN_TWIST_VARIANCE


@pytest.mark.ros
def test_route_and_match_markers(ros_messages):
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker

    from liploc_ros.ros import localizer_messages as msgs

    positions = np.arange(30.0).reshape(10, 3)
    route = msgs.route_markers(positions, np.array([0] * 6 + [1] * 4), "map")
    assert [m.type for m in route.markers] == [Marker.LINE_STRIP] * 2
    assert [len(m.points) for m in route.markers] == [6, 4]  # two drives are not joined
    assert all(m.header.frame_id == "map" for m in route.markers)
    long = msgs.route_markers(np.zeros((1001, 3)), np.zeros(1001, int), "map", max_points=100)
    assert 50 <= len(long.markers[0].points) <= 101
    match = msgs.match_markers(_pose(1, 1), positions[:3], True, Time(sec=3), "map")
    arrow, lines, spheres = match.markers
    assert (arrow.type, arrow.pose.position.x) == (Marker.ARROW, 1.0)
    assert (lines.type, len(lines.points)) == (Marker.LINE_LIST, 6)
    assert (spheres.type, len(spheres.points)) == (Marker.SPHERE_LIST, 3)
    assert arrow.color.g > arrow.color.r  # green: a fix
    no_fix = msgs.match_markers(_pose(1, 1), positions[:3], False, Time(sec=3), "map")
    assert no_fix.markers[0].color.r > no_fix.markers[0].color.g


@pytest.mark.ros
def test_diagnostics_levels(ros_messages, clock):
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from liploc_ros.ros import localizer_messages as msgs
    from liploc_ros.ros.frame_slots import SlotCounts

    stats = LocalizerStats(clock=clock)
    clock.t = 1.0
    cams = {"/cam": SlotCounts(received=5, taken=3, dropped=2)}
    idle = msgs.diagnostics_message("n", "hw", Time(), stats.window(), cams, {},
                                    waiting_for=("/cam2",))  # fmt: skip
    assert idle.status[0].level == DiagnosticStatus.WARN
    assert "no publisher yet on /cam2" in idle.status[0].message
    stats.record(ok=True, score=1.0, confidence=1.0, latency_ms=5.0, processing_ms=4.0)
    clock.t = 2.0
    ok = msgs.diagnostics_message("n", "hw", Time(), stats.window(), cams, {"wrong step": 2})
    status = ok.status[0]
    assert status.level == DiagnosticStatus.OK
    values = {kv.key: kv.value for kv in status.values}
    assert values["total_dropped"] == "2"
    assert values["/cam: processed"] == "3"
    assert values["warnings: wrong step"] == "2"
    assert values["processing_mean_ms"] == "4.0"


@pytest.mark.ros
def test_diagnostics_warn_on_a_map_without_a_calibration_for_the_model(ros_messages, clock):
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from liploc_ros.ros import localizer_messages as msgs
    from liploc_ros.ros.frame_slots import SlotCounts

    stats = LocalizerStats(clock=clock)
    clock.t = 1.0
    stats.record(ok=True, score=1.0, confidence=1.0, latency_ms=5.0, processing_ms=4.0)
    clock.t = 2.0
    cams = {"/cam": SlotCounts(received=1, taken=1, dropped=0)}
    args = ("n", "hw", Time(), stats.window(), cams, {})
    calibrated = msgs.diagnostics_message(*args, calibration="map drive, 600 frames of x")
    status = calibrated.status[0]
    assert status.level == DiagnosticStatus.OK
    assert {kv.key: kv.value for kv in status.values}["calibration"].startswith("map drive")
    why = "map m.lmap was calibrated for model 0123 but runs with 4567: conservative settings"
    other = msgs.diagnostics_message(*args, calibration="n/a", calibration_warning=why)
    status = other.status[0]
    assert status.level == DiagnosticStatus.WARN  # frames are fixed, the map still warns
    assert {kv.key: kv.value for kv in status.values}["calibration"] == why
    assert "calibrat" in status.message
