"""An operator's initial pose as the localizer node takes it: the checks, the map frame
(tf where tf2_ros is installed, a refusal naming the frame where not), and the node's own
/initialpose output told apart by content (rclpy's MessageInfo carries no publisher gid)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from builtin_interfaces.msg import Time
from scipy.spatial.transform import Rotation

from liploc_ros.ros import conversions as conv
from liploc_ros.ros.initialpose_input import InitialPoseError, SentPoses, initial_pose
from liploc_ros.ros.localizer_messages import pose_message
from liploc_ros.ros.tf_listener import SharedTf

COV = np.diag([0.25, 0.5, 0.01, 0.01, 0.01, math.radians(10.0) ** 2])


def _pose(x: float, y: float, yaw_deg: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:2, 3] = (x, y)
    return T


def _message(T=None, cov=COV, frame="map", stamp=(12, 500)):
    T = _pose(3.0, -2.0, 30.0) if T is None else T
    return pose_message(T, cov, Time(sec=stamp[0], nanosec=stamp[1]), frame)


@pytest.mark.parametrize("frame", ["map", "/map", ""])
def test_a_pose_in_the_map_frame_or_none_is_taken_as_is(frame):
    T, cov = initial_pose(_message(frame=frame), "map", tf=None)
    np.testing.assert_allclose(T, _pose(3.0, -2.0, 30.0), atol=1e-12)
    np.testing.assert_allclose(cov, COV)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: setattr(m.pose.pose.position, "x", math.nan), "position .* is not finite"),
        (lambda m: setattr(m.pose.pose.orientation, "w", 2.0), "not a unit quaternion"),
        (lambda m: m.pose.covariance.__setitem__(35, -0.1), "negative variance"),
        (lambda m: m.pose.covariance.__setitem__(7, math.inf), "covariance is not finite"),
    ],
)
def test_malformed_poses_are_refused_with_the_reason(change, message):
    msg = _message()
    change(msg)
    with pytest.raises(InitialPoseError, match=message):
        initial_pose(msg, "map", tf=None)


def test_a_nearly_unit_quaternion_is_normalised():
    msg = _message()
    msg.pose.pose.orientation.w *= 1.005
    T, _ = initial_pose(msg, "map", tf=None)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)


def test_another_frame_without_tf2_ros_is_refused_naming_it(without_tf2_ros):
    with pytest.raises(InitialPoseError, match=r"frame 'odom', not the map frame 'map'"):
        initial_pose(_message(frame="odom"), "map", SharedTf(node=None))


def test_another_frame_is_brought_into_the_map_by_tf_with_its_covariance(fake_tf2_ros):
    T_map_odom = _pose(10.0, 5.0, 90.0)
    fake_tf2_ros("map", "odom", {1.0: T_map_odom})
    T_odom_base = _pose(3.0, -2.0, 30.0)
    T, cov = initial_pose(_message(T_odom_base, frame="odom"), "map", SharedTf(node=None))
    np.testing.assert_allclose(T, T_map_odom @ T_odom_base, atol=1e-9)
    # turned by 90 degrees: x's variance is y's and the other way round
    assert cov[0, 0] == pytest.approx(COV[1, 1])
    assert cov[1, 1] == pytest.approx(COV[0, 0])
    assert cov[5, 5] == pytest.approx(COV[5, 5])
    with pytest.raises(InitialPoseError, match=r"tf has no transform map <- base_link"):
        initial_pose(_message(frame="base_link"), "map", SharedTf(node=None))


def test_the_nodes_own_output_is_recognised_and_nothing_else():
    sent = SentPoses(keep=2)
    ours = _message()
    sent.add(ours)
    assert _message() in sent  # the same message, received back
    assert _message(stamp=(12, 501)) not in sent  # another stamp
    assert _message(frame="odom") not in sent
    assert _message(T=_pose(3.0, -2.0, 31.0)) not in sent  # an operator's, a degree off
    assert _message(cov=COV * 2) not in sent
    sent.add(_message(stamp=(13, 0)))
    sent.add(_message(stamp=(14, 0)))
    assert ours not in sent  # only the last ``keep``
    assert conv.stamp_to_seconds(ours.header.stamp) == pytest.approx(12.0000005)
