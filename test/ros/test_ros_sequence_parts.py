"""The pieces of localizer_node's sequence mode, without a graph: the odometry buffer and
the tf odometry path, the covariance carried to base_link, the re-localize flag and the
particle throttle, the particle markers and the diagnostics values, the parameters."""

from __future__ import annotations

import math
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liploc_ros.errors import ConfigError
from liploc_ros.localization.estimate import PoseEstimate

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy is not installed")

from liploc_ros.ros import odometry_input as odo  # noqa: E402
from liploc_ros.ros.odometry_input import OdometryBuffer, OdometryInput  # noqa: E402

MOUNT = np.eye(4)
MOUNT[2, 3] = 1.73  # T_base_lidar: the LiDAR 1.73 m above base_link


def _pose(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[0, 3] = x
    return T


def test_the_buffer_interpolates_to_the_stamp_and_answers_in_the_lidar_frame():
    buf = OdometryBuffer(0.5, MOUNT)
    assert buf.at(1.0) == (None, odo.NOT_YET)
    buf.add(1.2, _pose(12.0, 20.0))
    buf.add(1.0, _pose(10.0, 0.0))  # out of order
    pose, cause = buf.at(1.1)
    assert cause == ""
    np.testing.assert_allclose(pose[:3, 3], [11.0, 0.0, 1.73], atol=1e-9)  # T_odom_base @ mount
    yaw = math.degrees(math.atan2(pose[1, 0], pose[0, 0]))
    assert yaw == pytest.approx(10.0)  # SLERP halfway
    # an image a little newer than the newest odometry: the newest; much newer: none
    np.testing.assert_allclose(buf.at(1.6)[0][:3, 3], [12.0, 0.0, 1.73])
    assert buf.at(1.8) == (None, odo.STALE)
    assert buf.at(0.9) == (None, odo.TOO_OLD)
    buf.add(3.0, _pose(30.0))  # 1.8 s after the previous sample: a gap
    assert buf.at(2.0) == (None, odo.GAP)


def test_the_buffer_waits_briefly_for_odometry_of_the_images_stamp():
    buf = OdometryBuffer(0.5, np.eye(4))
    buf.add(1.0, _pose(0.0))
    late = threading.Timer(0.05, buf.add, args=(1.1, _pose(1.0)))
    late.start()
    t0 = time.monotonic()
    pose, cause = buf.at(1.1, wait=2.0)
    assert time.monotonic() - t0 < 1.0  # woken by the sample, not by the timeout
    assert cause == ""
    assert pose[0, 3] == pytest.approx(1.0)
    late.join()


def test_a_frame_waits_for_no_odometry_when_none_flows(clock):
    """No sample ever (a client sending images only), or none for longer than FLOWING_S:
    the lookup answers at once instead of waiting for a sample that is not coming."""
    buf = OdometryBuffer(0.5, np.eye(4), clock=clock)
    waited = []
    for _ in range(3):
        t0 = time.monotonic()
        assert buf.at(5.0, wait=2.0) == (None, odo.NOT_YET)
        waited.append(time.monotonic() - t0)
    assert max(waited) < 0.5  # the wait would be 2 s
    buf.add(1.0, _pose(0.0))  # arrives at clock time 0: flowing
    assert buf.flowing()
    clock.t = odo.FLOWING_S + 0.1  # then nothing for longer than FLOWING_S: stopped
    assert not buf.flowing()
    t0 = time.monotonic()
    assert buf.at(5.0, wait=2.0) == (None, odo.STALE)
    assert time.monotonic() - t0 < 0.5


def test_the_time_spent_getting_odometry_is_measured():
    buf = OdometryBuffer(0.5, np.eye(4))
    source = OdometryInput("topic", "topic /odom", lambda t: buf.at(t, 0.2), lambda *a: None)
    assert source.wait_ms() == 0.0
    source.at(1.0)  # nothing received: no wait
    assert source.wait_ms() < 50.0
    buf.add(1.0, _pose(0.0))
    source.at(1.05)  # flowing, the image newer than the newest sample: waits 0.2 s
    assert source.wait_ms() > 0.5 * 200.0 / 2  # two frames, one waited about 200 ms


def _cfg(**kw):
    base = {"odometry_source": "topic", "odom_frame": "odom", "base_frame": "base_link",
            "odom_timeout": 0.5, "odom_topic": "/odom"}  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def test_odometry_source_none_counts_every_frame_without_warning():
    warnings = []
    source = OdometryInput.create(None, _cfg(odometry_source="none"), MOUNT,
                                  lambda *a: warnings.append(a))  # fmt: skip
    assert source.at(1.0) is None
    assert source.at(1.1) is None
    assert source.missing_counts() == {odo.OFF: 2}
    assert source.label == "none"
    assert not warnings


def test_tf_odometry_at_the_stamp_else_the_newest_if_recent(fake_tf2_ros):
    fake = fake_tf2_ros("odom", "base_link", {5.0: _pose(5.0), 5.2: _pose(7.0)})
    assert odo.resolve_source("auto") == "tf"
    source = OdometryInput.create(object(), _cfg(odometry_source="auto"), MOUNT,
                                  lambda *a: None)  # fmt: skip
    assert source.source == "tf"
    assert source.label == "tf odom -> base_link"
    np.testing.assert_allclose(source.at(5.0)[:3, 3], [5.0, 0.0, 1.73])
    assert fake.lookups[0] == ("odom", "base_link", 5_000_000_000)
    np.testing.assert_allclose(source.at(5.5)[:3, 3], [7.0, 0.0, 1.73])  # newest, 0.3 s old
    assert source.at(6.0) is None  # newest 0.8 s old
    assert source.at(4.0) is None  # tf's newest is newer: that stamp is not in tf
    assert source.missing_counts() == {odo.STALE: 1, odo.NO_TF: 1}


def test_without_tf2_ros_auto_is_the_topic_and_tf_is_refused(without_tf2_ros):
    assert odo.resolve_source("auto") == "topic"
    with pytest.raises(ConfigError, match="odometry_source 'tf' needs tf2_ros"):
        OdometryInput.create(object(), _cfg(odometry_source="tf"), MOUNT, lambda *a: None)


def test_the_filters_covariance_is_carried_to_base_link_by_the_lever_arm():
    from liploc_ros.localization.base_pose import base_pose, carried_covariance

    cov = np.diag([0.25, 0.36, 1.0, 0.01, 0.04, 0.09])
    np.testing.assert_allclose(carried_covariance(cov, np.zeros(3)), cov)
    moved = carried_covariance(cov, [0.0, 0.0, -1.73])  # base_link 1.73 m below the LiDAR
    # pitch swings base_link along x, roll along y; yaw about z leaves it in place
    assert moved[0, 0] == pytest.approx(0.25 + 1.73**2 * 0.04)
    assert moved[1, 1] == pytest.approx(0.36 + 1.73**2 * 0.01)
    np.testing.assert_allclose(moved[3:, 3:], cov[3:, 3:])
    # a filter estimate (no matches to re-weight: neither map nor floors are needed)
    est = PoseEstimate(0.0, True, "", np.eye(4), cov, 0.9, 1.0, np.array([0, 1]),
                       np.ones(2, np.float32), state="tracking")  # fmt: skip
    fix = base_pose(est, None, MOUNT, None)
    np.testing.assert_allclose(fix.matrix[:3, 3], [0.0, 0.0, -1.73])
    np.testing.assert_allclose(fix.covariance, moved)


class _Mode:
    """The mode of a fake localizer: records what the session asks of it."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.resets = 0
        self.held = np.zeros((0, 3))

    def reset(self) -> None:
        self.resets += 1
        self.calls.append("reset")

    def seed(self, T_map_base, covariance, T_base_lidar) -> None:
        from liploc_ros.errors import MapError

        if T_map_base[0, 3] > 1000.0:  # as the filter refuses a prior wholly off its map
            raise MapError("the initial pose (x 2000.0 ...) is off the map")
        self.calls.append(("seed", float(T_map_base[0, 3])))

    def request_full_update(self) -> None:
        self.calls.append("nomotion")

    def particles(self):
        return self.held


class _Tracker:
    """A fake localizer of a tracking mode (the session talks to its mode)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.mode = _Mode(self.calls)

    @property
    def resets(self) -> int:
        return self.mode.resets

    def reconfigure(self, settings) -> None:
        self.calls.append(("config", settings))


def test_initial_pose_nomotion_and_config_requests_wait_for_the_worker():
    from liploc_ros.errors import ConfigError
    from liploc_ros.ros.tracking_session import TrackingSession

    tracker = _Tracker()
    session = TrackingSession(tracker, OdometryInput("none", "none", None, None))
    pose = np.eye(4)
    pose[0, 3] = 7.0
    with pytest.raises(ConfigError, match="6 x 6 covariance"):
        session.request_seed(pose, np.eye(3), np.eye(4))  # refused at once, nothing queued
    session.request_reset()
    session.request_seed(pose, np.eye(6), np.eye(4))  # the newer request wins over the reset
    session.request_nomotion_update()
    session.request_config("cfg")
    assert tracker.calls == []  # nothing happens outside the worker
    assert session.apply_requests() == ("config", "seed", "nomotion")
    assert tracker.calls == [("config", "cfg"), ("seed", 7.0), "nomotion"]
    assert session.apply_requests() == ()
    session.request_seed(pose, np.eye(6), np.eye(4))
    session.request_reset()  # a reset after a seed: global localization
    assert session.apply_reset()
    assert tracker.calls[-1] == "reset"
    assert (session.seeds, session.resets) == (1, 1)


def test_a_seed_the_filter_refuses_is_reported_and_changes_nothing():
    from liploc_ros.ros.tracking_session import TrackingSession

    tracker = _Tracker()
    session = TrackingSession(tracker, OdometryInput("none", "none", None, None))
    far = np.eye(4)
    far[0, 3] = 2000.0
    session.request_seed(far, np.eye(6), np.eye(4))
    assert session.apply_requests() == ("seed refused",)
    assert "off the map" in session.seed_error
    assert tracker.calls == []
    assert session.seeds == 0


def test_a_relocalize_request_is_applied_once_by_the_worker_and_particles_are_throttled():
    from liploc_ros.ros.tracking_session import TrackingSession

    now = [100.0]
    tracker = _Tracker()
    session = TrackingSession(tracker, OdometryInput("none", "none", None, None),
                              marker_period=0.5, clock=lambda: now[0])  # fmt: skip
    assert not session.apply_reset()
    session.request_reset()
    session.request_reset()  # two requests before the worker looks: one reset
    assert session.apply_reset()
    assert not session.apply_reset()
    assert tracker.resets == 1
    assert session.resets == 1
    T_lidar_base = np.eye(4)
    T_lidar_base[0, 3] = -1.0  # base_link 1 m behind the LiDAR
    assert session.particles_due(T_lidar_base) is None  # no particles before a frame
    tracker.mode.held = np.array([[10.0, 0.0, 0.0], [0.0, 5.0, math.pi / 2]])
    np.testing.assert_allclose(
        session.particles_due(T_lidar_base), [[9.0, 0.0], [0.0, 4.0]], atol=1e-12
    )
    now[0] += 0.2
    assert session.particles_due(T_lidar_base) is None  # within the marker period
    now[0] += 0.4
    assert session.particles_due(T_lidar_base) is not None


def test_particle_markers_and_the_sequence_diagnostics():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus
    from visualization_msgs.msg import Marker

    from liploc_ros.ros import localizer_messages as msgs
    from liploc_ros.ros.frame_slots import SlotCounts
    from liploc_ros.ros.localizer_stats import LocalizerStats

    (cloud,) = msgs.particle_markers(np.ones((5000, 2)), -1.73, Time(sec=3), "map").markers
    assert (cloud.ns, cloud.type, cloud.header.frame_id) == (msgs.PARTICLES_NS, Marker.POINTS,
                                                             "map")  # fmt: skip
    assert 2000 >= len(cloud.points) >= 1000
    assert cloud.points[0].z == pytest.approx(-1.73)
    stats = LocalizerStats()
    stats.record(ok=False, score=1.0, confidence=0.2, latency_ms=5.0, processing_ms=4.0)
    values = {"state": "initializing", "total_frames_without_odometry": "1"}
    cams = {"/cam": SlotCounts(received=1, taken=1, dropped=0)}
    (status,) = msgs.diagnostics_message("n", "hw", Time(), stats.window(), cams, {},
                                         tracking=values).status  # fmt: skip
    assert status.level == DiagnosticStatus.WARN
    assert status.message == "1 frames, no fix (initializing)"
    got = {kv.key: kv.value for kv in status.values}
    assert got["state"] == "initializing"
    assert got["total_frames_without_odometry"] == "1"


def test_the_sequence_parameters_are_checked():
    from liploc_ros.config import from_dict
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig

    good = {"model": "m", "map_path": "m"}
    cfg = from_dict(LocalizerNodeConfig, {**good, "sequence": {"particles": 300}})
    assert (cfg.mode, cfg.odometry_source, cfg.odom_topic) == ("sequence", "auto", "/odom")
    assert cfg.sequence.particles == 300
    cases = [
        ({"mode": "multi"}, "mode"),
        ({"odometry_source": "gps"}, "odometry_source"),
        ({"odom_timeout": 0.0}, "odom_timeout"),
        ({"odom_topic": " "}, "odom_topic"),
        ({"sequence": {"particles": 5}}, "particles"),
        ({"sequence": {"bogus": 1}}, "bogus"),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            from_dict(LocalizerNodeConfig, {**good, **extra})
