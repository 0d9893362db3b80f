"""launch/localize_ekf.launch.py, config/ekf_liploc.yaml and config/liploc.rviz.

The launch file runs against the stand-in launch API (which arguments, which nodes, with
which parameters); the EKF file is held to robot_localization's documented ekf_node
parameters (names, types, lengths) and to the localizer's topics and frames; the RViz layout to
the topics localizer_node publishes. Neither robot_localization nor RViz is needed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from launch_file_helpers import Shutdown, load_launch_file, run_launch
from scipy.stats import chi2

from liploc_ros.config_fields import config_docs
from liploc_ros.mapdb.info import MapInfo
from liploc_ros.param_files import node_section
from liploc_ros.ros.localizer_params import LocalizerNodeConfig

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "localize_ekf.launch.py"
LOCALIZE_LAUNCH = ROOT / "launch" / "localize.launch.py"
EKF_YAML = ROOT / "config" / "ekf_liploc.yaml"
RVIZ = ROOT / "config" / "liploc.rviz"
#: localizer_node's modules (the node, its runtime, messages, ...): where it creates publishers
NODE_SOURCES = sorted((ROOT / "liploc_ros" / "ros").glob("localizer*.py"))
EKF = "ekf_filter_node"
ALLOWED_IMPORT_ROOTS = {"launch", "launch_ros", "ament_index_python", "liploc_ros"}
#: localize.launch.py's arguments, and the EKF's
LOCALIZE_ARGUMENTS = {"map", "model", "image_topic", "device", "config", "use_sim_time",
                      "namespace"}  # fmt: skip
ARGUMENTS = LOCALIZE_ARGUMENTS | {"odom_topic", "ekf_config", "ekf_set_pose"}
#: the state vector's order in robot_localization's *_config vectors
STATE = ("x", "y", "z", "roll", "pitch", "yaw", "vx", "vy", "vz",
         "vroll", "vpitch", "vyaw", "ax", "ay", "az")  # fmt: skip

# -- robot_localization's documented ekf_node parameters ---------------------------------------
# Source: cra-ros-pkg/robot_localization, branch ros2 (commit 1cb9533), file
# doc/state_estimation_nodes.rst, section "Parameters Common to ekf_localization_node and
# ukf_localization_node" (standard and advanced; the UKF-only alpha, kappa, beta and the
# ROS 1-only *_nodelay left out), with the value types src/ros_filter.cpp declares them with
# (ROS 2 refuses a parameter file value of another type: 30 for a double is an error). Plus
# two names that the same repository's params/ekf.yaml documents and the page does not:
# odomN_pose_use_child_frame, and imuN_twist_rejection_threshold (the name the ROS 2 code
# reads; the page says imuN_angular_velocity_rejection_threshold).


@dataclasses.dataclass(frozen=True)
class Vector:
    """A list parameter: element type and the lengths robot_localization reads."""

    element: type
    lengths: tuple[int, ...]


#: the full 15 x 15 form: Humble's ekf_node reads only that one (later ones also a diagonal)
_MATRIX = Vector(float, (225,))
DOCUMENTED: dict[str, Any] = {
    "frequency": float, "sensor_timeout": float, "two_d_mode": bool,
    "map_frame": str, "odom_frame": str, "base_link_frame": str,
    "base_link_output_frame": str, "world_frame": str,
    "transform_time_offset": float, "transform_timeout": float,
    "gravitational_acceleration": float, "initial_state": Vector(float, (15,)),
    "permit_corrected_publication": bool, "print_diagnostics": bool, "publish_tf": bool,
    "publish_acceleration": bool,
    "use_control": bool, "stamped_control": bool, "control_timeout": float,
    "control_config": Vector(bool, (6,)), "acceleration_limits": Vector(float, (6,)),
    "deceleration_limits": Vector(float, (6,)), "acceleration_gains": Vector(float, (6,)),
    "deceleration_gains": Vector(float, (6,)),
    "smooth_lagged_data": bool, "history_length": float,
    "debug": bool, "debug_out_file": str,
    "process_noise_covariance": _MATRIX, "dynamic_process_noise_covariance": bool,
    "initial_estimate_covariance": _MATRIX,
    "reset_on_time_jump": bool, "predict_to_current_time": bool, "disabled_at_startup": bool,
}  # fmt: skip
_ALL = ("odom", "twist", "imu", "pose")
#: per-sensor parameters ``<kind><N><suffix>``: suffix -> (the sensor kinds that have it, type)
SENSOR_DOCUMENTED: dict[str, tuple[tuple[str, ...], Any]] = {
    "": (_ALL, str),  # the topic
    "_config": (_ALL, Vector(bool, (15,))),
    "_queue_size": (_ALL, int),
    "_differential": (("odom", "imu", "pose"), bool),
    "_relative": (("odom", "imu", "pose"), bool),
    "_pose_rejection_threshold": (("odom", "imu"), float),
    "_twist_rejection_threshold": (("odom", "imu"), float),
    "_rejection_threshold": (("pose", "twist"), float),
    "_angular_velocity_rejection_threshold": (("imu",), float),
    "_linear_acceleration_rejection_threshold": (("imu",), float),
    "_remove_gravitational_acceleration": (("imu",), bool),
    "_pose_use_child_frame": (("odom",), bool),
}
_SENSOR_KEY = re.compile(r"^(odom|twist|imu|pose)(0|[1-9][0-9]*)(.*)$")


def _documented_type(key: str) -> Any:
    """The type robot_localization documents for ``key``; None for a name it does not."""
    if key in DOCUMENTED:
        return DOCUMENTED[key]
    match = _SENSOR_KEY.match(key)
    if match and match.group(3) in SENSOR_DOCUMENTED:
        kinds, kind_type = SENSOR_DOCUMENTED[match.group(3)]
        return kind_type if match.group(1) in kinds else None
    return None


def _type_error(value: Any, expected: Any) -> str | None:
    """Why ``value`` is not of the ``expected`` parameter type (None when it is). Exact
    types: YAML's 30 is an int, which ROS 2 refuses for a double, and True is no int."""
    if isinstance(expected, Vector):
        if not isinstance(value, list):
            return f"a list expected, got {value!r}"
        if len(value) not in expected.lengths:
            return f"{expected.lengths} values expected, got {len(value)}"
        wrong = [v for v in value if type(v) is not expected.element]
        return f"{expected.element.__name__} values expected, got {wrong[:3]}" if wrong else None
    return None if type(value) is expected else f"{expected.__name__} expected, got {value!r}"


# -- what the localizer publishes -----------------------------------------------------------------


def _publishers() -> dict[str, tuple[str, str]]:
    """topic -> (message type, QoS argument) of localizer_node's publishers with a literal
    topic (``create_publisher``, ``create_lifecycle_publisher`` or a wrapper ending in
    ``_publisher``), read from its source: importing it needs rclpy."""
    found: dict[str, tuple[str, str]] = {}
    for path in NODE_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.endswith("publisher")
                and len(node.args) >= 3
                and isinstance(node.args[1], ast.Constant)
            ):
                call = (ast.unparse(node.args[0]), ast.unparse(node.args[2]))
                topic = node.args[1].value
                assert found.setdefault(topic, call) == call, f"{topic}: {found[topic]}, {call}"
    assert found, f"no publisher found in {[p.name for p in NODE_SOURCES]}"
    return found


def _resolved(topic: str, node: str, namespace: str = "") -> str:
    """A topic as ROS 2 resolves it for ``node`` in ``namespace`` (``~/x``: private)."""
    parts = [p for p in namespace.split("/") if p]
    if topic.startswith("~/"):
        return "/" + "/".join([*parts, node, topic[2:]])
    return topic if topic.startswith("/") else "/" + "/".join([*parts, topic])


def _node_name() -> str:
    """The localizer's name: what both launch files give it."""
    ekf_name = load_launch_file(LAUNCH).module.NODE_NAME
    assert ekf_name == load_launch_file(LOCALIZE_LAUNCH).module.NODE_NAME
    return ekf_name


def _topic_of(message_type: str) -> str:
    """The localizer's resolved topic of ``message_type`` (PoseWithCovarianceStamped:
    ~/pose; the initial pose goes to a parameter's topic and is not a literal)."""
    (topic,) = {t for t, (m, _) in _publishers().items() if m == message_type}
    return _resolved(topic, _node_name())


def _default(name: str) -> Any:
    """A localizer_node parameter's default (the config needs model and map to be built)."""
    (field,) = [f for f in dataclasses.fields(LocalizerNodeConfig) if f.name == name]
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _default_map_frame() -> str:
    """The localizer's map_frame: its default, or where that is empty the map's frame_id."""
    frame = _default("map_frame")
    if frame:
        return frame
    (field,) = [f for f in dataclasses.fields(MapInfo) if f.name == "frame_id"]
    return field.default


def _ekf() -> dict[str, Any]:
    return node_section(EKF_YAML, EKF)


def _fused(vector: list[bool]) -> set[str]:
    return {name for name, on in zip(STATE, vector, strict=True) if on}


# -- the launch file ----------------------------------------------------------------------------


def test_loads_with_only_the_launch_apis():
    loaded = load_launch_file(LAUNCH)
    assert loaded.imports <= ALLOWED_IMPORT_ROOTS, loaded.imports - ALLOWED_IMPORT_ROOTS
    assert {"launch", "launch_ros"} <= loaded.imports
    assert callable(loaded.module.generate_launch_description)


def test_declares_localize_launch_arguments_and_the_ekf_ones(installed_share):
    arguments = run_launch(LAUNCH, installed_share).arguments
    assert set(arguments) == ARGUMENTS
    assert set(run_launch(LOCALIZE_LAUNCH, installed_share).arguments) == LOCALIZE_ARGUMENTS
    assert all(argument.description for argument in arguments.values())


def test_starts_the_localizer_without_tf_and_the_ekf_with_the_installed_yaml(installed_share):
    launched = run_launch(LAUNCH, installed_share)
    localizer, ekf = launched.nodes
    assert (localizer.package, localizer.executable, localizer.name) == (
        "liploc_ros", "localizer_node", _node_name()
    )  # fmt: skip
    config, overrides = localizer.parameters
    assert config == str(installed_share / "config" / "localizer.yaml")
    # the EKF owns map -> odom
    assert overrides["publish_tf"] is False
    assert overrides["use_sim_time"] is False
    assert isinstance(localizer.process["on_exit"], Shutdown)

    assert (ekf.package, ekf.executable, ekf.name) == ("robot_localization", "ekf_node", EKF)
    ekf_file, ekf_overrides = ekf.parameters
    assert Path(ekf_file) == installed_share / "config" / "ekf_liploc.yaml"
    assert Path(ekf_file).is_file()  # installed by setup.py's data_files
    assert list(yaml.safe_load(Path(ekf_file).read_text())) == [ekf.name]
    assert ekf_overrides["pose0"] == _topic_of("PoseWithCovarianceStamped")
    assert ekf_overrides["pose0"] == "/localizer_node/pose"
    assert ekf_overrides["use_sim_time"] is False
    assert ("odometry/filtered", "odometry/global") in ekf.remappings
    assert isinstance(ekf.process["on_exit"], Shutdown)
    assert (installed_share / "launch" / LAUNCH.name).is_file()
    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}
    assert ekf.package in deps


def test_the_wheel_odometry_argument_reaches_both_nodes(installed_share):
    localizer, ekf = run_launch(LAUNCH, installed_share, odom_topic="/wheel/odometry").nodes
    assert localizer.parameters[1]["odom_topic"] == "/wheel/odometry"
    assert ekf.parameters[1]["odom0"] == "/wheel/odometry"
    # by default both get /odom, the localizer's default and the file's odom0
    localizer, ekf = run_launch(LAUNCH, installed_share).nodes
    assert localizer.parameters[1]["odom_topic"] == ekf.parameters[1]["odom0"] == "/odom"
    assert _default("odom_topic") == _ekf()["odom0"] == "/odom"
    # empty: the files' values
    localizer, ekf = run_launch(LAUNCH, installed_share, odom_topic="").nodes
    assert "odom_topic" not in localizer.parameters[1]
    assert "odom0" not in ekf.parameters[1]


def test_the_localizer_arguments_are_localize_launchs(installed_share):
    given = {
        "map": "/maps/town.lmap",
        "model": "/m/tiny.safetensors",
        "device": "cpu",
        "image_topic": "/a/image_raw, /b/image_raw/compressed",
        "use_sim_time": "true",
    }
    localizer, ekf = run_launch(LAUNCH, installed_share, **given).nodes
    reference = run_launch(LOCALIZE_LAUNCH, installed_share, **given).node
    overrides = localizer.parameters[1]
    assert reference.parameters[1].items() <= overrides.items()
    assert overrides["use_sim_time"] is ekf.parameters[1]["use_sim_time"] is True
    assert localizer.parameters[0] == reference.parameters[0]
    # arguments left empty keep the file's values
    overrides = run_launch(LAUNCH, installed_share, model="").nodes[0].parameters[1]
    assert not {"model", "map_path", "device", "image_topics"} & set(overrides)


def test_every_localizer_override_is_a_parameter_of_the_node(installed_share):
    given = {"map": "m.lmap", "device": "cpu", "image_topic": "/cam", "odom_topic": "/w"}
    overrides = run_launch(LAUNCH, installed_share, **given).nodes[0].parameters[1]
    names = set(config_docs(LocalizerNodeConfig)) | {"use_sim_time"}  # ROS's own
    assert set(overrides) <= names, set(overrides) - names


def test_ekf_set_pose_sends_the_first_confident_fix_to_the_ekf(installed_share):
    overrides = run_launch(LAUNCH, installed_share).nodes[0].parameters[1]
    # ekf_node subscribes to `set_pose` in its namespace
    assert overrides["publish_initialpose"] is True
    assert overrides["initialpose_topic"] == "/set_pose"
    overrides = run_launch(LAUNCH, installed_share, ekf_set_pose="false").nodes[0].parameters[1]
    assert "publish_initialpose" not in overrides
    assert "initialpose_topic" not in overrides


def test_with_a_namespace_both_nodes_get_their_sections(installed_share):
    """Sections keyed `localizer_node` / `ekf_filter_node` would not apply under /car1."""
    localizer, ekf = run_launch(LAUNCH, installed_share, namespace="/car1/").nodes
    assert localizer.namespace == ekf.namespace == "/car1/"
    config = installed_share / "config" / "localizer.yaml"
    assert localizer.parameters[0] == node_section(config, localizer.name)
    assert ekf.parameters[0] == node_section(EKF_YAML, EKF)
    (pose,) = [t for t, (m, _) in _publishers().items() if m == "PoseWithCovarianceStamped"]
    assert ekf.parameters[1]["pose0"] == _resolved(pose, localizer.name, "/car1/")
    assert ekf.parameters[1]["pose0"] == "/car1/localizer_node/pose"
    assert localizer.parameters[1]["initialpose_topic"] == "/car1/set_pose"


@pytest.mark.launch_ros
def test_generate_launch_description_with_launch_ros():
    # launch_ros first: without ROS, `launch` would be this repository's launch/ folder
    pytest.importorskip("launch_ros", reason="ROS 2 launch_ros is not installed (no ROS)")
    launch = pytest.importorskip("launch", reason="ROS 2 launch is not installed (no ROS)")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("localize_ekf_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description().entities
    assert {e.name for e in entities if isinstance(e, DeclareLaunchArgument)} == ARGUMENTS
    (opaque,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    context = launch.LaunchContext()
    context.launch_configurations.update(
        {
            "map": "town.lmap",
            "model": "",
            "image_topic": "/cam",
            "device": "cpu",
            "config": str(ROOT / "config" / "localizer.yaml"),
            "use_sim_time": "false",
            "namespace": "",
            "odom_topic": "/odom",
            "ekf_config": str(EKF_YAML),
            "ekf_set_pose": "true",
        }
    )
    nodes = opaque.execute(context)
    assert all(isinstance(node, Node) for node in nodes)
    assert [n.node_executable for n in nodes] == ["localizer_node", "ekf_node"]


# -- config/ekf_liploc.yaml -------------------------------------------------------------------


def test_every_ekf_key_is_a_documented_ekf_node_parameter_of_its_type():
    params = _ekf()
    assert list(yaml.safe_load(EKF_YAML.read_text())) == [EKF]
    undocumented = [key for key in params if _documented_type(key) is None]
    assert not undocumented, f"not ekf_node parameters: {undocumented}"
    wrong = {k: e for k, v in params.items() if (e := _type_error(v, _documented_type(k)))}
    assert not wrong, wrong


def test_the_documented_names_catch_mistakes():
    """The check above refuses what ekf_node would ignore or refuse."""
    assert _documented_type("pose0_rejection_threshold") is float
    assert _documented_type("odom1_twist_rejection_threshold") is float
    assert _documented_type("pose0_pose_rejection_threshold") is None  # odom/imu only
    assert _documented_type("twist0_differential") is None  # twist has no pose to difference
    assert _documented_type("odom_0_config") is None
    assert _documented_type("odom01_config") is None
    assert _documented_type("two_d") is None
    assert _type_error(30, float)
    assert _type_error(True, int)
    assert not _type_error(30.0, float)
    assert _type_error([True] * 14, Vector(bool, (15,)))
    assert _type_error([1.0, 0], Vector(float, (2,)))  # ROS 2 lists hold one type
    assert _type_error("1e8", float)  # YAML 1.1 reads 1e8 as a string


def test_sensors_are_numbered_from_0_without_gaps_and_each_has_its_topic():
    params = _ekf()
    indices: dict[str, set[int]] = {}
    for key in params:
        if match := _SENSOR_KEY.match(key):
            kind, index = match.group(1), int(match.group(2))
            assert f"{kind}{index}" in params, f"{key} for a sensor without a topic"
            indices.setdefault(kind, set()).add(index)
    assert indices == {"odom": {0}, "pose": {0}}
    for kind, found in indices.items():
        assert found == set(range(len(found))), f"{kind} sensors must be numbered 0, 1, ..."
        for index in found:
            assert f"{kind}{index}_config" in params  # without it nothing is fused


def test_the_config_vectors_are_15_booleans_and_say_what_each_input_sets():
    params = _ekf()
    vectors = {key: value for key, value in params.items() if key.endswith("_config")}
    assert set(vectors) == {"odom0_config", "pose0_config"}
    for key, value in vectors.items():
        assert len(value) == 15, key
        assert all(type(v) is bool for v in value), key
    # wheel odometry as velocity, the camera fix as an absolute x, y, yaw in map
    assert _fused(params["odom0_config"]) == {"vx", "vy", "vyaw"}
    assert _fused(params["pose0_config"]) == {"x", "y", "yaw"}
    assert params["pose0_differential"] is False
    assert params["pose0_relative"] is False


def test_two_d_mode_in_the_map_frame_publishing_map_to_odom():
    params = _ekf()
    assert params["two_d_mode"] is True
    assert params["world_frame"] == params["map_frame"]  # absolute fixes: map -> odom
    assert params["publish_tf"] is True
    assert _default("publish_tf") is False  # the localizer's own is off unless asked for


def test_the_frames_are_the_localizers():
    params = _ekf()
    shipped = node_section(ROOT / "config" / "localizer.yaml", "localizer_node")
    assert params["base_link_frame"] == _default("base_frame") == shipped["base_frame"]
    assert params["odom_frame"] == _default("odom_frame") == shipped["odom_frame"]
    assert params["map_frame"] == _default_map_frame() == "map"
    assert shipped["map_frame"] in ("", params["map_frame"])


def test_pose0_is_the_localizers_pose_topic():
    assert _publishers()["~/pose"][0] == "PoseWithCovarianceStamped"
    assert _ekf()["pose0"] == _topic_of("PoseWithCovarianceStamped") == "/localizer_node/pose"


def test_the_rejection_threshold_refuses_outliers_not_consistent_fixes():
    """robot_localization rejects when the squared Mahalanobis distance reaches the square
    of the threshold; for x, y, yaw that is chi-square with 3 degrees of freedom."""
    threshold = _ekf()["pose0_rejection_threshold"]
    assert chi2.sf(threshold**2, df=3) < 1e-3  # a place confusion is refused
    assert chi2.sf(threshold**2, df=3) > 1e-9  # not so wide that nothing ever is
    assert "odom0_twist_rejection_threshold" not in _ekf()  # wheels are not outlier-prone


def test_the_initial_covariance_lets_the_first_fix_in_anywhere_on_the_map():
    params = _ekf()
    cov = np.array(params["initial_estimate_covariance"]).reshape(15, 15)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.all(np.diag(cov) > 0)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    threshold = params["pose0_rejection_threshold"]
    std = dict(zip(STATE, np.sqrt(np.diag(cov)), strict=True))
    # the state starts at the origin: a fix 10 km away, or facing the other way, is accepted
    assert min(std["x"], std["y"]) * threshold >= 10_000.0
    assert std["yaw"] * threshold >= math.pi
    assert "process_noise_covariance" not in params  # robot_localization's default


# -- config/liploc.rviz -------------------------------------------------------------------------


def _rviz() -> dict[str, Any]:
    return yaml.safe_load(RVIZ.read_text())


def _displays(cls: str) -> list[dict[str, Any]]:
    displays = _rviz()["Visualization Manager"]["Displays"]
    return [d for d in displays if d["Class"] == f"rviz_default_plugins/{cls}"]


def test_rviz_shows_the_localizers_topics_in_its_map_frame():
    publishers = _publishers()
    assert publishers["~/markers"][0] == "MarkerArray"
    manager = _rviz()["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == _default_map_frame()
    (pose,) = _displays("PoseWithCovariance")
    assert pose["Topic"]["Value"] == _resolved("~/pose", _node_name())
    assert pose["Topic"]["Value"] == _topic_of("PoseWithCovarianceStamped")
    (markers,) = _displays("MarkerArray")
    assert markers["Topic"]["Value"] == _resolved("~/markers", _node_name())
    # the route is sent once, latched: RViz must ask for it with the same durability
    assert publishers["~/markers"][1] == "LATCHED_QOS"
    assert markers["Topic"]["Durability Policy"] == "Transient Local"
    (image,) = _displays("Image")
    assert image["Topic"]["Value"] in _default("image_topics")
    assert _displays("Grid")
    assert _displays("TF")
    (odometry,) = _displays("Odometry")  # the EKF's, off unless the EKF runs
    assert odometry["Topic"]["Value"] == "/odometry/global"
    assert odometry["Enabled"] is False
    assert manager["Views"]["Current"]["Target Frame"] == "<Fixed Frame>"


def test_rviz_layout_is_installed(installed_share):
    assert (installed_share / "config" / RVIZ.name).is_file()
