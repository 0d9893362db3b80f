"""The nodes never die of a bug nor go mute: logging that cannot raise, a worker that counts
an unexpected error and goes on, a node that exits non-zero when its worker ends anyway;
and the parts of the stamp check and of the padded-image rule (in-process, no graph)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

import rclpy
import rclpy.logging
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from localizer_helpers import random_image, wait_until
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from liploc_ros.config_fields import config_docs
from liploc_ros.errors import ConfigError
from liploc_ros.ros import conversions as conv
from liploc_ros.ros import localizer_messages as msgs
from liploc_ros.ros.frame_slots import SlotCounts
from liploc_ros.ros.image_input import decode_image
from liploc_ros.ros.localizer_params import LocalizerNodeConfig
from liploc_ros.ros.localizer_stats import LocalizerStats
from liploc_ros.ros.throttle import WarningThrottle

pytestmark = pytest.mark.ros

CAMERA = "/cam/image_raw"


# -- logging that cannot raise --------------------------------------------------------------


def test_throttles_of_two_severities_share_one_rclpy_logger(capfd):
    """What the localizer does: an INFO throttle (waiting for a publisher) and a WARN one
    (bad frames) on the node's logger; rclpy binds a call site to one severity."""
    from liploc_ros.ros.safe_log import severity_log

    logger = rclpy.logging.get_logger("liploc_test_two_severities")
    waiting = WarningThrottle(severity_log(logger, "info"), 0.0)
    bad = WarningThrottle(severity_log(logger, "warning"), 0.0)
    for _ in range(2):
        assert waiting.warn("/cam", "waiting for a publisher on /cam")
        assert bad.warn("unsupported encoding", "frame dropped")
    err = capfd.readouterr().err
    assert err.count("waiting for a publisher on /cam") == 2, err
    assert err.count("frame dropped") == 2, err
    assert "logger failed" not in err
    with pytest.raises(ValueError, match="unknown severity"):
        severity_log(logger, "loud")


def test_a_logger_that_raises_never_raises_into_the_throttle_caller(capfd):
    """The old pattern (one call site, two severities) makes rclpy raise: the line goes to
    stderr instead of killing the caller."""
    from liploc_ros.ros.safe_log import safe_log

    logger = rclpy.logging.get_logger("liploc_test_one_site")
    info, warning = WarningThrottle(logger.info, 0.0), WarningThrottle(logger.warning, 0.0)
    assert info.warn("a", "first line")
    assert warning.warn("b", "second line")  # rclpy: "severity cannot be changed"
    err = capfd.readouterr().err
    assert "second line" in err
    assert "Logger severity cannot be changed" in err

    def broken(text: str) -> None:
        raise RuntimeError("logger gone")

    assert safe_log(broken, "still said") is False
    assert "still said" in capfd.readouterr().err


# -- stamps far from the clock, errors, padded images ---------------------------------------


def test_far_stamps_are_kept_out_of_the_latency_and_errors_are_counted(clock):
    from liploc_ros.ros.localizer_stats import stamp_is_far

    now = 1.7e9
    assert stamp_is_far(now + 10 * 365 * 86400, now, 5.0)
    assert stamp_is_far(1.0, now, 5.0)  # 1970
    assert not stamp_is_far(now - 4.9, now, 5.0)
    assert not stamp_is_far(1.0, now, 0.0)  # 0: no check
    stats = LocalizerStats(clock=clock)
    stats.record(ok=True, score=1.0, confidence=1.0, latency_ms=None, processing_ms=5.0)
    stats.record(ok=True, score=1.0, confidence=1.0, latency_ms=20.0, processing_ms=5.0)
    stats.record_error()
    clock.t = 1.0
    w = stats.window()
    assert (w.frames, w.errors, w.total_errors) == (2, 1, 1)
    assert w.latency_p50_ms == pytest.approx(20.0)
    assert w.latency_max_ms == pytest.approx(20.0)
    clock.t = 2.0
    w = stats.window()
    assert (w.errors, w.total_errors) == (0, 1)

    cams = {CAMERA: SlotCounts(received=1, taken=1, dropped=0)}
    stats.record_error()
    clock.t = 3.0
    status = msgs.diagnostics_message("n", "hw", Time(), stats.window(), cams, {}).status[0]
    assert status.level == DiagnosticStatus.ERROR
    assert "1 internal error(s)" in status.message
    assert {kv.key: kv.value for kv in status.values}["total_internal_errors"] == "2"


def test_max_stamp_offset_is_a_checked_described_parameter():
    assert LocalizerNodeConfig(model="m", map_path="m").max_stamp_offset == 5.0
    assert LocalizerNodeConfig(model="m", map_path="m", max_stamp_offset=0.0)
    with pytest.raises(ConfigError, match="max_stamp_offset must be a finite number >= 0"):
        LocalizerNodeConfig(model="m", map_path="m", max_stamp_offset=-1.0)
    assert "use_sim_time" in config_docs(LocalizerNodeConfig)["max_stamp_offset"]


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "rgba8"])
def test_trailing_bytes_are_counted_and_the_picture_is_intact(encoding):
    from liploc_ros.ros.image_input import trailing_bytes

    rgb = random_image(3, (6, 8, 3))
    channels = {"rgb8": 3, "mono8": 1, "rgba8": 4}[encoding]
    pixels = rgb[:, :, :1] if channels == 1 else rgb
    if channels == 4:
        pixels = np.concatenate([rgb, np.full((6, 8, 1), 255, np.uint8)], axis=2)
    msg = conv.rgb_to_image(rgb)  # then re-encoded by hand
    msg.encoding, msg.step = encoding, 8 * channels
    msg.data = pixels.tobytes() + bytes(37)
    assert trailing_bytes(msg) == 37
    expected = np.repeat(pixels, 3, axis=2) if channels == 1 else rgb
    np.testing.assert_array_equal(decode_image(msg), expected)
    msg.data = pixels.tobytes()
    assert trailing_bytes(msg) == 0


# -- the localizer node in-process ----------------------------------------------------------


def _localizer(context, model_and_map, **extra):
    from liploc_ros.ros.localizer_node import LocalizerNode

    model, map_path = model_and_map
    params = {
        "model": str(model),
        "map_path": str(map_path),
        "device": "cpu",
        "image_topics": [CAMERA],
        "mode": "single",  # a pose per frame (and Localizer.localize is what is patched)
        "localizer.max_spread_m": 1000.0,
        "warn_period": 60.0,
        **extra,
    }
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return LocalizerNode(context=context, parameter_overrides=overrides)


def _image(seed: int) -> object:
    header = Header(stamp=conv.seconds_to_stamp(time.time()), frame_id="cam")
    return conv.rgb_to_image(random_image(seed, (48, 64, 3)), header=header)


def _interrupt_after(seconds: float) -> threading.Timer:
    """SIGINT to this process after ``seconds``: a node that would spin forever returns."""
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_an_unexpected_error_is_counted_reported_as_error_and_the_worker_goes_on(
    model_and_map, ros_context, capfd
):
    node = _localizer(ros_context, model_and_map)
    poses, diagnostics = [], []
    node.runtime.pose_pub.publish = poses.append
    node.runtime.diag_pub.publish = diagnostics.append
    real, calls = node.runtime.localizer.localize, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("simulated bug in the localizer")
        return real(*args, **kwargs)

    node.runtime.localizer.localize = flaky
    try:
        for i in range(3):  # one frame at a time: the slot keeps only the newest
            node.runtime.slots.put(CAMERA, _image(i))
            wait_until(lambda n=i + 1: len(calls) >= n, 30, f"frame {i} taken")
        wait_until(lambda: poses, 30, "the pose of the frame after the errors")
        assert not node.worker_died()
        node.runtime.publish_diagnostics()
        (status,) = diagnostics[-1].status
        assert status.level == DiagnosticStatus.ERROR
        values = {kv.key: kv.value for kv in status.values}
        assert values["total_internal_errors"] == "2"
        err = capfd.readouterr().err
        assert "RuntimeError: simulated bug in the localizer" in err  # with the traceback
        assert err.count("[internal error: ") == 1, err  # the second one throttled
        assert "[ERROR]" in err
        assert "the worker goes on" in err
        node.runtime.publish_diagnostics()  # a period without errors: no longer ERROR
        assert diagnostics[-1].status[0].level != DiagnosticStatus.ERROR
    finally:
        node.close()
        node.destroy_node()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_localizer_exits_1_when_its_worker_thread_ends(model_and_map, ros_context, capfd):
    node = _localizer(ros_context, model_and_map)

    def broken_take(timeout: float | None = None):
        raise RuntimeError("the slots are broken")

    node.runtime.slots.take = broken_take
    guard = _interrupt_after(20.0)
    try:
        t0 = time.monotonic()
        assert node.run() == 1
        assert time.monotonic() - t0 < 10
        err = capfd.readouterr().err
        assert "[FATAL]" in err
        assert "worker thread ended" in err
        assert "supervisor" in err
    finally:
        guard.cancel()
        node.destroy_node()


# -- the map builder node in-process --------------------------------------------------------


class _Boom(BaseException):
    """Ends a thread the way nothing in the worker catches."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_map_builder_exits_1_when_its_worker_thread_ends(model_and_map, ros_context, capfd):
    from liploc_ros.ros.map_builder_node import MapBuilderNode

    model, _ = model_and_map
    params = {
        "model": str(model),
        "map_path": str(Path(model_and_map[1]).parent / "never.lmap"),
        "use_tf": False,
        "save_on_shutdown": False,
        "build.device": "cpu",
    }
    node = MapBuilderNode(
        context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )

    def dying(*, final: bool) -> None:
        raise _Boom()

    node.live._drain = dying
    guard = _interrupt_after(20.0)
    try:
        node.live.submit(np.ones((10, 4), np.float32), 1.0, "velo")  # wakes the worker
        t0 = time.monotonic()
        assert node.run_live() == 1
        assert time.monotonic() - t0 < 10
        err = capfd.readouterr().err
        assert "[FATAL]" in err
        assert "map worker thread ended" in err
    finally:
        guard.cancel()
        node.destroy_node()
