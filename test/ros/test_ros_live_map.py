"""Pose sources and the live map worker (liploc_ros.ros.pose_sources / live_map); no ROS."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from localizer_helpers import wait_until
from scipy.spatial.transform import Rotation

from liploc_ros.errors import ConfigError, EmptyCloudError, LiplocError
from liploc_ros.ros.live_map import LiveMapBuilder
from liploc_ros.ros.pose_sources import NoPoseError, PoseBuffer, TfPoseLookup, extrinsic_matrix


def _pose(x: float, yaw: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[0, 3] = x
    return T


# -- extrinsics and pose buffers -----------------------------------------------------------


def test_extrinsic_from_six_and_sixteen_values():
    T = extrinsic_matrix([1.0, 2.0, 3.0, 0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # roll, pitch, yaw are fixed-axis x, y, z (tf2's static_transform_publisher order)
    rpy = extrinsic_matrix([0, 0, 0, 0.1, 0.2, 0.3])[:3, :3]
    expected = Rotation.from_euler("z", 0.3) * Rotation.from_euler("y", 0.2)
    expected = expected * Rotation.from_euler("x", 0.1)
    np.testing.assert_allclose(rpy, expected.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(extrinsic_matrix(T.reshape(-1)), T)
    np.testing.assert_array_equal(extrinsic_matrix([0] * 6), np.eye(4))
    with pytest.raises(ConfigError, match="6 values"):
        extrinsic_matrix([1.0, 2.0])
    with pytest.raises(ConfigError, match="not a rigid"):
        extrinsic_matrix((2 * np.eye(4)).reshape(-1))
    with pytest.raises(ConfigError, match="non-finite"):
        extrinsic_matrix([np.nan] * 6)


def test_pose_buffer_interpolates_and_never_extrapolates():
    buf = PoseBuffer(max_gap=1.0)
    assert buf.lookup("velo", 5.0) is None  # nothing yet: wait
    buf.add(11.0, _pose(2.0, np.pi / 2))
    buf.add(10.0, _pose(0.0))  # out of order is fine
    np.testing.assert_allclose(buf.lookup("velo", 10.0), _pose(0.0))
    mid = buf.lookup("velo", 10.5)
    np.testing.assert_allclose(mid, _pose(1.0, np.pi / 4), atol=1e-12)
    assert buf.lookup("velo", 11.5) is None  # newer than the newest sample: not yet
    with pytest.raises(NoPoseError, match="older than the oldest"):
        buf.lookup("velo", 9.0)
    buf.add(13.0, _pose(3.0))
    with pytest.raises(NoPoseError, match="gap"):
        buf.lookup("velo", 12.0)
    buf.add(11.0, _pose(5.0))  # a repeated stamp replaces
    np.testing.assert_allclose(buf.lookup("velo", 11.0), _pose(5.0))
    assert len(buf) == 3
    with pytest.raises(ConfigError):
        buf.add(14.0, np.full((4, 4), np.nan))


def test_pose_buffer_applies_the_extrinsic_and_forgets_old_samples():
    base_to_lidar = extrinsic_matrix([0.5, 0.0, 1.7, 0.0, 0.0, 0.0])
    buf = PoseBuffer(max_gap=2.0, history=5.0, sensor_to_lidar=base_to_lidar)
    for t in range(20):
        buf.add(float(t), _pose(float(t), np.pi / 2))
    assert len(buf) == 6  # 14 .. 19
    with pytest.raises(NoPoseError):
        buf.lookup("velo", 10.0)
    T = buf.lookup("velo", 15.0)
    # the LiDAR sits 0.5 m ahead of base_link, and base_link faces +y
    np.testing.assert_allclose(T[:3, 3], [15.0, 0.5, 1.7], atol=1e-12)


class _TfError(Exception):
    pass


def test_tf_lookup_with_a_buffer():
    calls = []

    def lookup_transform(target, source, when):
        calls.append((target, source, when))
        if when > 100:
            raise _TfError("extrapolation into the future")
        t = SimpleNamespace(x=1.0, y=2.0, z=3.0)
        q = SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0)
        return SimpleNamespace(transform=SimpleNamespace(translation=t, rotation=q))

    def to_matrix(transform):
        T = np.eye(4)
        T[:3, 3] = [transform.translation.x, transform.translation.y, transform.translation.z]
        return T

    buffer = SimpleNamespace(lookup_transform=lookup_transform)
    lookup = TfPoseLookup(
        buffer, "/map", errors=(_TfError,), to_time=lambda t: t * 10, to_matrix=to_matrix
    )
    np.testing.assert_allclose(lookup.lookup("/velo", 2.0)[:3, 3], [1, 2, 3])
    assert calls[-1] == ("map", "velo", 20.0)  # leading slashes dropped, time converted
    assert lookup.lookup("velo", 11.0) is None
    with pytest.raises(NoPoseError, match="frame_id"):
        lookup.lookup("", 1.0)


# -- the live worker -----------------------------------------------------------------------


class FakeBuilder:
    """Records add_scan calls; keeps every scan; save writes the stamps as text."""

    def __init__(self, block: threading.Event | None = None, fail_on: float | None = None):
        self.added: list[tuple[float, np.ndarray, int]] = []
        self.block = block
        self.fail_on = fail_on

    def add_scan(self, points, pose, stamp, *, frame_index=-1):
        if self.block is not None:
            assert self.block.wait(10)
        if stamp == self.fail_on:
            raise EmptyCloudError("no point in the field of view")
        self.added.append((stamp, pose, frame_index))
        return True

    def __len__(self):
        return len(self.added)

    def save(self, path):
        if not self.added:
            raise LiplocError("nothing to save")
        Path(path).write_text(" ".join(f"{s:g}" for s, _, _ in self.added))
        return Path(path)


POINTS = np.ones((10, 4), np.float32)


def test_scans_wait_for_their_pose_and_keep_their_order(tmp_path):
    poses = PoseBuffer(max_gap=5.0)
    builder = FakeBuilder()
    live = LiveMapBuilder(builder, poses, pose_timeout=30.0)
    try:
        for t in (1.0, 2.0, 3.0):
            live.submit(POINTS, t, "velo")
        time.sleep(0.2)
        assert builder.added == []
        assert live.stats().pending == 3
        poses.add(0.0, _pose(0.0))
        poses.add(2.0, _pose(2.0))
        live.poses_changed()
        wait_until(lambda: len(builder.added) == 2)
        assert [a[0] for a in builder.added] == [1.0, 2.0]
        np.testing.assert_allclose(builder.added[0][1], _pose(1.0))
        assert [a[2] for a in builder.added] == [0, 1]  # frame_index: arrival order
        poses.add(4.0, _pose(4.0))
        live.poses_changed()
        wait_until(lambda: len(builder.added) == 3)
        s = live.stats()
        assert (s.received, s.posed, s.entries, s.pending) == (3, 3, 3, 0)
        result = live.save(tmp_path / "m.txt").result(5)
        assert result.entries == 3
        assert (tmp_path / "m.txt").read_text() == "1 2 3"
    finally:
        live.close()


def test_a_scan_without_pose_is_dropped_after_the_timeout_and_blocks_no_one(clock):
    warnings: list[str] = []
    poses = PoseBuffer(max_gap=5.0)
    builder = FakeBuilder()
    live = LiveMapBuilder(builder, poses, pose_timeout=1.0, warn=warnings.append, clock=clock)
    try:
        live.submit(POINTS, 10.0, "velo")  # its pose will never come
        poses.add(5.0, _pose(5.0))
        live.submit(POINTS, 4.0, "velo")  # older than every pose: dropped at once ...
        time.sleep(0.2)
        assert live.stats().pending == 2  # ... but only once the head has its answer
        clock.t = 1.5
        wait_until(lambda: live.stats().dropped_no_pose == 2)
        assert builder.added == []
        assert any("no pose within pose_timeout" in w for w in warnings)
    finally:
        live.close()


def test_the_queue_is_bounded():
    warnings: list[str] = []
    live = LiveMapBuilder(
        FakeBuilder(), PoseBuffer(), pose_timeout=60.0, max_pending=2, warn=warnings.append
    )
    try:
        for t in (1.0, 2.0, 3.0, 4.0):
            live.submit(POINTS, t, "velo")
        s = live.stats()
        assert (s.received, s.pending, s.dropped_overflow) == (4, 2, 2)
        assert "queue full" in warnings[0]
        assert len(warnings) == 1  # the second drop is rate-limited
    finally:
        live.close()


def test_a_slow_builder_never_blocks_submit_or_stats():
    release = threading.Event()
    poses = PoseBuffer(max_gap=20.0)
    poses.add(0.0, _pose(0.0))
    poses.add(10.0, _pose(10.0))
    builder = FakeBuilder(block=release)
    live = LiveMapBuilder(builder, poses, pose_timeout=60.0)
    try:
        live.submit(POINTS, 1.0, "velo")  # the worker takes it and hangs in add_scan
        wait_until(lambda: live.stats().pending == 0)
        done = threading.Event()

        def producer():
            for t in range(2, 7):
                live.submit(POINTS, float(t), "velo")
            live.stats()
            done.set()

        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        assert done.wait(5), "submit() blocked while the builder was busy"
        assert builder.added == []
        release.set()
        wait_until(lambda: len(builder.added) == 6)
    finally:
        release.set()
        live.close()


def test_refused_scans_are_counted_and_the_worker_goes_on(tmp_path):
    poses = PoseBuffer(max_gap=20.0)
    poses.add(0.0, _pose(0.0))
    poses.add(10.0, _pose(10.0))
    warnings: list[str] = []
    builder = FakeBuilder(fail_on=2.0)
    live = LiveMapBuilder(builder, poses, warn=warnings.append)
    for t in (1.0, 2.0, 3.0):
        live.submit(POINTS, t, "velo")
    result = live.close(save_to=tmp_path / "m.txt", timeout=10)
    assert [a[0] for a in builder.added] == [1.0, 3.0]
    assert result.stats.dropped_invalid == 1
    assert result.entries == 2
    assert any("no point in the field of view" in w for w in warnings)


def test_close_adds_what_has_a_pose_drops_the_rest_and_saves(tmp_path):
    poses = PoseBuffer(max_gap=5.0)
    poses.add(0.0, _pose(0.0))
    poses.add(2.0, _pose(2.0))
    builder = FakeBuilder()
    live = LiveMapBuilder(builder, poses, pose_timeout=60.0)
    for t in (1.0, 2.0, 3.0):
        live.submit(POINTS, t, "velo")
    result = live.close(save_to=tmp_path / "m.txt", timeout=10)
    assert (tmp_path / "m.txt").read_text() == "1 2"
    assert result.stats.dropped_no_pose == 1
    assert result.stats.pending == 0
    live.submit(POINTS, 4.0, "velo")  # after close: ignored
    assert live.stats().received == 3
    with pytest.raises(LiplocError, match="closed"):
        live.save(tmp_path / "again.txt").result(1)


def test_save_errors_reach_the_caller(tmp_path):
    live = LiveMapBuilder(FakeBuilder(), PoseBuffer())
    try:
        with pytest.raises(LiplocError, match="nothing to save"):
            live.save(tmp_path / "m.txt").result(5)
    finally:
        live.close()
    live = LiveMapBuilder(FakeBuilder(), PoseBuffer())
    with pytest.raises(LiplocError, match="nothing to save"):
        live.close(save_to=tmp_path / "m.txt", timeout=10)


def test_warnings_are_rate_limited_per_kind(clock):
    warnings: list[str] = []
    live = LiveMapBuilder(FakeBuilder(), PoseBuffer(), warn=warnings.append, clock=clock)
    try:
        for _ in range(3):
            live.warn("a", "first kind")
        live.warn("b", "second kind")
        clock.t = 6.0
        live.warn("a", "first kind again")
        assert warnings == [
            "first kind",
            "second kind",
            "first kind again (2 more like it not shown)",
        ]
    finally:
        live.close()


# -- the worker never dies of a bug ---------------------------------------------------------


class _FlakyPoses:
    """A pose source with a bug: it raises something it should not for one stamp."""

    def __init__(self, bad_stamp: float):
        self.bad_stamp = bad_stamp

    def lookup(self, frame_id, stamp):
        if stamp == self.bad_stamp:
            raise RuntimeError("pose source bug")
        return _pose(stamp)


def test_a_pose_source_bug_costs_one_scan_not_the_worker(tmp_path):
    warnings: list[str] = []
    builder = FakeBuilder()
    live = LiveMapBuilder(builder, _FlakyPoses(2.0), warn=warnings.append)
    for t in (1.0, 2.0, 3.0):
        live.submit(POINTS, t, "velo")
    wait_until(lambda: len(builder.added) == 2)
    assert live.alive
    result = live.close(save_to=tmp_path / "m.txt", timeout=10)
    assert [a[0] for a in builder.added] == [1.0, 3.0]
    assert (result.stats.errors, result.stats.dropped_no_pose) == (1, 1)
    assert any("RuntimeError: pose source bug" in w for w in warnings)


def test_a_warn_function_that_raises_does_not_kill_the_worker(tmp_path, capfd):
    def broken_warn(text: str) -> None:
        raise ValueError("Logger severity cannot be changed between calls.")

    poses = PoseBuffer(max_gap=20.0)
    poses.add(0.0, _pose(0.0))
    poses.add(10.0, _pose(10.0))
    builder = FakeBuilder(fail_on=2.0)  # refused: the worker warns through broken_warn
    live = LiveMapBuilder(builder, poses, warn=broken_warn)
    for t in (1.0, 2.0, 3.0):
        live.submit(POINTS, t, "velo")
    wait_until(lambda: len(builder.added) == 2)
    result = live.close(save_to=tmp_path / "m.txt", timeout=10)
    assert [a[0] for a in builder.added] == [1.0, 3.0]
    assert result.stats.dropped_invalid == 1
    assert "no point in the field of view" in capfd.readouterr().err  # said on stderr


class _Boom(BaseException):
    """Ends the worker thread the way nothing in it catches."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_after_the_worker_died_close_still_saves_what_has_a_pose(tmp_path):
    poses = PoseBuffer(max_gap=5.0)
    poses.add(0.0, _pose(0.0))
    poses.add(4.0, _pose(4.0))
    builder = FakeBuilder()
    live = LiveMapBuilder(builder, poses)
    drain, calls = live._drain, []

    def dying_once(*, final: bool) -> None:
        calls.append(final)
        if len(calls) == 1:
            raise _Boom()
        drain(final=final)

    live._drain = dying_once
    for t in (1.0, 2.0):
        live.submit(POINTS, t, "velo")
    wait_until(lambda: not live.alive)
    result = live.close(save_to=tmp_path / "m.txt", timeout=10)
    assert (tmp_path / "m.txt").read_text() == "1 2"
    assert result.entries == 2
