"""localizer_node as a managed node, and its dynamic parameters, as real processes.

A test-side client drives the node through its real lifecycle services
(``/localizer_node/change_state``, ``get_state``: lifecycle_msgs) and its parameter services
(``set_parameters``, ``get_parameters``, ``describe_parameters``), publishes camera frames
and collects what the node publishes in each state. Small untrained model, random map (its
fingerprint), single mode with every frame a fix: the node's behaviour is the question.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from localizer_helpers import (
    STARTUP_S,
    GraphSide,
    NodeProcess,
    diagnostics_windows,
    make_map_file,
    make_model_file,
    random_image,
    wait_until,
)
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from liploc_ros.ros import conversions as conv

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 211 + os.getpid() % 20  # 211..230: apart from the other node tests
CAMERA = "/cam/image_raw"
NODE = "/localizer_node"
QUIET_S = 1.5  # how long "nothing is published" is watched for


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle")
    loaded = make_model_file(folder / "tiny.safetensors", size=64)
    make_map_file(folder / "town.lmap", loaded)
    return folder / "tiny.safetensors", folder / "town.lmap"


def _params(model: Path, map_path: Path, **extra) -> dict:
    return {
        "model": model,
        "map_path": map_path,
        "device": "cpu",
        "mode": "single",
        "image_topics": [CAMERA],
        "localizer.max_spread_m": 1000.0,  # random embeddings: every frame gets a fix
        "diagnostics_period": 0.5,
        "discovery_period": 0.2,
        **extra,
    }


@pytest.fixture
def graph(ros_env):
    g = GraphSide()
    g.collect(PoseWithCovarianceStamped, f"{NODE}/pose", g.got.poses, 100)
    g.collect(DiagnosticArray, "/diagnostics", g.got.diagnostics, 100)
    g.image_pub = g.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
    yield g
    g.close()


def _call(graph: GraphSide, node: NodeProcess, srv_type, name: str, request, timeout=60.0):
    client = graph.node.create_client(srv_type, name)
    wait_until(client.service_is_ready, STARTUP_S, f"the service {name}", node)
    future = client.call_async(request)
    wait_until(future.done, timeout, f"the answer of {name}", node)
    graph.node.destroy_client(client)
    return future.result()


def _state(graph, node) -> str:
    return _call(graph, node, GetState, f"{NODE}/get_state", GetState.Request()).current_state


def _transition(graph, node, transition_id: int) -> tuple[bool, float]:
    """(success, seconds the service took) of one lifecycle transition."""
    request = ChangeState.Request(transition=Transition(id=transition_id))
    t0 = time.monotonic()
    answer = _call(graph, node, ChangeState, f"{NODE}/change_state", request)
    return answer.success, time.monotonic() - t0


def _value(v) -> ParameterValue:
    if isinstance(v, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(v))


def _set(graph, node, **values):
    """The SetParametersResult of each ``name=value`` (dotted names with ``__`` for ``.``)."""
    request = SetParameters.Request(
        parameters=[
            Parameter(name=k.replace("__", "."), value=_value(v)) for k, v in values.items()
        ]
    )
    return _call(graph, node, SetParameters, f"{NODE}/set_parameters", request).results


def _get(graph, node, name: str):
    answer = _call(graph, node, GetParameters, f"{NODE}/get_parameters",
                   GetParameters.Request(names=[name]))  # fmt: skip
    (value,) = answer.values
    return {
        ParameterType.PARAMETER_DOUBLE: value.double_value,
        ParameterType.PARAMETER_STRING: value.string_value,
        ParameterType.PARAMETER_BOOL: value.bool_value,
    }.get(value.type, value)


def _send_frames(graph: GraphSide, count: int, t0: float, period: float = 0.1) -> list[float]:
    stamps = []
    for i in range(count):
        stamp = round(t0 + 0.1 * i, 6)
        header = Header(stamp=conv.seconds_to_stamp(stamp), frame_id="cam")
        graph.image_pub.publish(conv.rgb_to_image(random_image(i), "bgr8", header=header))
        stamps.append(stamp)
        time.sleep(period)
    return stamps


def _pose_stamps(graph: GraphSide) -> set[float]:
    with graph.lock:
        return {round(conv.stamp_to_seconds(r.msg.header.stamp), 6) for r in graph.got.poses}


def _quiet(graph: GraphSide, node: NodeProcess, t0: float, what: str) -> None:
    """Frames go out for QUIET_S: no pose comes back, nor any diagnostics."""
    with graph.lock:
        diagnostics = len(graph.got.diagnostics)
    stamps = _send_frames(graph, int(QUIET_S / 0.1), t0)
    time.sleep(0.5)
    assert not (_pose_stamps(graph) & set(stamps)), f"poses while {what}\n{node.log}"
    with graph.lock:
        assert len(graph.got.diagnostics) == diagnostics, f"diagnostics while {what}"
    node.assert_running()


def test_transitions_through_the_lifecycle_services(files, ros_env, graph, tmp_path):
    """autostart false: unconfigured until told; a bad map fails configure and leaves the
    node unconfigured and alive; map_path set then, configure works; poses only while
    active; cleanup and shutdown from the services; the process then ends cleanly."""
    model, map_path = files
    bad = tmp_path / "missing.lmap"
    node = NodeProcess(tmp_path, ros_env, _params(model, bad, autostart=False))
    try:
        assert _state(graph, node).id == State.PRIMARY_STATE_UNCONFIGURED
        assert "configured in" not in node.log
        _quiet(graph, node, 100.0, "unconfigured")

        ok, _ = _transition(graph, node, Transition.TRANSITION_CONFIGURE)
        assert not ok
        assert _state(graph, node).label == "unconfigured"
        assert re.search(r"\[ERROR\] .*configure failed: map file .*missing\.lmap", node.log)
        node.assert_running()

        # configure-time parameters may be set while unconfigured
        (result,) = _set(graph, node, map_path=str(map_path))
        assert result.successful, result.reason
        ok, configure_s = _transition(graph, node, Transition.TRANSITION_CONFIGURE)
        assert ok, node.log
        assert _state(graph, node).label == "inactive"
        _quiet(graph, node, 200.0, "inactive")

        ok, activate_s = _transition(graph, node, Transition.TRANSITION_ACTIVATE)
        assert ok, node.log
        assert _state(graph, node).label == "active"
        wait_until(graph.image_pub.get_subscription_count, 10, "the camera", node)
        stamps = _send_frames(graph, 6, 300.0, period=0.3)
        wait_until(lambda: _pose_stamps(graph) & set(stamps), 30, "poses while active", node)
        wait_until(lambda: diagnostics_windows(graph), 10, "diagnostics while active", node)

        ok, deactivate_s = _transition(graph, node, Transition.TRANSITION_DEACTIVATE)
        assert ok, node.log
        assert _state(graph, node).label == "inactive"
        time.sleep(0.5)  # a frame in flight may still end in its pose: let it
        _quiet(graph, node, 400.0, "deactivated")
        # now configured: the configure-time ones are refused, with the reason
        (result,) = _set(graph, node, map_path=str(bad))
        assert not result.successful
        assert "map_path" in result.reason
        assert "unconfigured" in result.reason
        assert _get(graph, node, "map_path") == str(map_path)

        # active again: poses again (the worker and the subscriptions come back)
        ok, _ = _transition(graph, node, Transition.TRANSITION_ACTIVATE)
        assert ok, node.log
        stamps = _send_frames(graph, 6, 500.0, period=0.3)
        wait_until(lambda: _pose_stamps(graph) & set(stamps), 30, "poses once more", node)

        for transition, label in [
            (Transition.TRANSITION_DEACTIVATE, "inactive"),
            (Transition.TRANSITION_CLEANUP, "unconfigured"),
            (Transition.TRANSITION_UNCONFIGURED_SHUTDOWN, "finalized"),
        ]:
            ok, _ = _transition(graph, node, transition)
            assert ok, f"{label}: {node.log}"
            assert _state(graph, node).label == label
        assert "model and map released" in node.log
        print(f"configure {configure_s:.2f} s, activate {1e3 * activate_s:.0f} ms, deactivate "
              f"{1e3 * deactivate_s:.0f} ms (service round trips)")  # fmt: skip
        assert node.stop() == 0, node.log
    finally:
        node.kill()


def test_dynamic_parameters_apply_while_running_and_bad_ones_are_refused(
    files, ros_env, graph, tmp_path
):
    model, map_path = files
    node = NodeProcess(tmp_path, ros_env, _params(model, map_path))  # autostart: active
    try:
        wait_until(graph.image_pub.get_subscription_count, STARTUP_S, "camera", node)
        stamps = _send_frames(graph, 4, 100.0, period=0.3)
        wait_until(lambda: _pose_stamps(graph) & set(stamps), 30, "poses", node)

        # a gate: a spread no frame of this map passes: no fix, then poses again
        (result,) = _set(graph, node, localizer__max_spread_m=1e-6)
        assert result.successful, result.reason
        assert _get(graph, node, "localizer.max_spread_m") == 1e-6
        time.sleep(0.5)
        stamps = _send_frames(graph, 6, 200.0, period=0.3)
        time.sleep(1.0)
        assert not _pose_stamps(graph) & set(stamps), "the new gate was not applied"
        (result,) = _set(graph, node, localizer__max_spread_m=1000.0)
        assert result.successful, result.reason
        stamps = _send_frames(graph, 6, 300.0, period=0.3)
        wait_until(lambda: _pose_stamps(graph) & set(stamps), 30, "poses again", node)

        # a bad value: refused with the config's reason, the old value kept
        (result,) = _set(graph, node, localizer__max_spread_m=-1.0)
        assert not result.successful
        assert "localizer.max_spread_m" in result.reason, result.reason
        assert _get(graph, node, "localizer.max_spread_m") == 1000.0
        (result,) = _set(graph, node, sequence__target_precision=1.5)
        assert not result.successful
        assert "target_precision" in result.reason, result.reason
        # a configure-time one while running: refused
        (result,) = _set(graph, node, model="/elsewhere.safetensors")
        assert not result.successful
        assert _get(graph, node, "model") == str(model)

        # a rate: /diagnostics every 0.5 s, then every 0.1 s
        def rate(seconds: float) -> float:
            with graph.lock:
                before = len(graph.got.diagnostics)
            time.sleep(seconds)
            with graph.lock:
                return (len(graph.got.diagnostics) - before) / seconds

        slow = rate(3.0)
        (result,) = _set(graph, node, diagnostics_period=0.1)
        assert result.successful, result.reason
        time.sleep(0.3)
        fast = rate(3.0)
        assert 1.0 <= slow <= 3.0, slow
        assert fast >= 3 * slow, (slow, fast)

        # ros2 param describe: a range for the bounded ones
        names = ["sequence.target_precision", "model"]
        request = DescribeParameters.Request(names=names)
        answer = _call(graph, node, DescribeParameters, f"{NODE}/describe_parameters", request)
        precision, model_descriptor = answer.descriptors
        assert precision.floating_point_range, precision
        assert not precision.read_only
        assert model_descriptor.read_only  # autostart: configure-time ones are read-only
        assert node.stop() == 0, node.log
    finally:
        node.kill()
