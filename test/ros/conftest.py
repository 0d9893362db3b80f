"""Shared by the ROS tests: a ROS domain per test module, a hand-set clock and a stand-in
tf2_ros (which the ROS 2 wheels do not include). Nothing here imports rclpy at import time:
the modules that need it skip without it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ros_env(request):
    """The test module on a ROS domain of its own (its ``DOMAIN_ID``), discovery on this host
    only, while its tests run; the environment for the node processes it starts."""
    from localizer_helpers import ros_domain

    yield from ros_domain(request.module.DOMAIN_ID)


class FakeClock:
    """A clock the test sets by hand: calling it gives ``t`` (seconds)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _fake_tf2_ros(parent: str, child: str, samples: dict[float, np.ndarray]) -> types.ModuleType:
    from geometry_msgs.msg import TransformStamped
    from std_msgs.msg import Header

    from liploc_ros.ros import conversions as conv

    module = types.ModuleType("tf2_ros")
    lookups: list[tuple[str, str, int]] = []
    sent: list = []
    listeners: list = []

    class TransformException(Exception):  # noqa: N818 (tf2_ros's name)
        pass

    class Buffer:
        def __init__(self, cache_time=None, node=None, **kwargs):
            self.node = node
            self.lookups: list[tuple[str, str, int]] = []

        def lookup_transform(self, target, source, time, timeout=None):
            lookup = (target, source, time.nanoseconds)
            self.lookups.append(lookup)
            lookups.append(lookup)
            if (target, source) != (parent, child) or not samples:
                raise TransformException(f"no transform {target} <- {source}")
            if time.nanoseconds == 0:  # Time(): the newest
                stamp = max(samples)
            else:
                match = [s for s in samples if abs(round(s * 1e9) - time.nanoseconds) <= 1000]
                if not match:
                    raise TransformException(f"no {target} <- {source} at {time.nanoseconds} ns")
                stamp = match[0]
            return TransformStamped(
                header=Header(stamp=conv.seconds_to_stamp(stamp), frame_id=target),
                child_frame_id=source,
                transform=conv.matrix_to_transform(samples[stamp]),
            )

    class TransformListener:
        def __init__(self, buffer, node, **kwargs):
            self.buffer = buffer
            listeners.append(self)

    class TransformBroadcaster:
        def __init__(self, node, **kwargs):
            self.node = node

        def sendTransform(self, transform):  # noqa: N802 (tf2_ros's name)
            sent.append(transform)

    module.Buffer, module.TransformListener = Buffer, TransformListener
    module.TransformBroadcaster = TransformBroadcaster
    module.TransformException = TransformException
    module.lookups, module.sent, module.listeners = lookups, sent, listeners
    return module


@pytest.fixture
def fake_tf2_ros(monkeypatch):
    """``fake_tf2_ros(parent, child, samples)`` makes ``import tf2_ros`` give, for the test, the
    slice of tf2_ros the nodes use: Buffer.lookup_transform(parent, child, time) answering the
    ``samples`` (stamp in s -> 4x4 parent <- child) at their stamps, the newest at Time(), and
    TransformException otherwise; TransformListener (each one made is in
    ``module.listeners``); a TransformBroadcaster whose sent transforms are in
    ``module.sent``. Every lookup is in ``buffer.lookups`` and ``module.lookups`` as
    (target, source, nanoseconds). Returns the module."""

    def install(parent: str, child: str, samples: dict[float, np.ndarray]) -> types.ModuleType:
        module = _fake_tf2_ros(parent, child, samples)
        monkeypatch.setitem(sys.modules, "tf2_ros", module)
        return module

    return install


@pytest.fixture
def without_tf2_ros(monkeypatch) -> None:
    """``import tf2_ros`` raises ImportError for the test, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "tf2_ros", None)
