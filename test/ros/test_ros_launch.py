"""launch/build_map.launch.py: run against a stand-in for the launch API everywhere (which
arguments it declares, the node it starts, with which parameters), and with ROS 2 launch
where that is installed."""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from launch_file_helpers import Shutdown, console_scripts, load_launch_file, run_launch

from liploc_ros.param_files import parameters_for

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "build_map.launch.py"
ALLOWED_IMPORT_ROOTS = {"launch", "launch_ros", "ament_index_python", "liploc_ros"}
ARGUMENTS = {"bag", "model", "map", "config", "use_sim_time", "namespace"}
#: launch argument -> the node parameter it sets when it is not empty
PATH_ARGUMENTS = {"bag": "bag_path", "model": "model", "map": "map_path"}


def _node_parameters() -> set[str]:
    """The parameters map_builder_node declares (rclpy is needed to say)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
    from liploc_ros.ros.params import parameter_names

    return set(parameter_names(MapBuilderNodeConfig))


def test_loads_with_only_the_launch_apis():
    loaded = load_launch_file(LAUNCH)
    assert loaded.imports, "the launch file imports nothing?"
    assert loaded.imports <= ALLOWED_IMPORT_ROOTS, loaded.imports - ALLOWED_IMPORT_ROOTS
    assert callable(loaded.module.generate_launch_description)


def test_starts_the_installed_map_builder_node(installed_share):
    node = run_launch(LAUNCH, installed_share).node
    assert (node.package, node.executable, node.name) == (
        "liploc_ros", "map_builder_node", "map_builder_node"
    )  # fmt: skip
    # offline mode exits when the map is saved; a failed node ends the launch too
    assert isinstance(node.process["on_exit"], Shutdown)
    assert console_scripts()[node.executable] == "liploc_ros.ros.map_builder_node:main"
    assert ET.parse(ROOT / "package.xml").getroot().findtext("name") == node.package
    # `ros2 run` and launch look in lib/<package>
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/liploc_ros"
    assert (installed_share / "launch" / LAUNCH.name).is_file()  # installed with the package
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    module, function = console_scripts()[node.executable].split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_the_default_parameter_file_is_the_installed_nodes(installed_share):
    launched = run_launch(LAUNCH, installed_share)
    config = Path(launched.configurations["config"])
    assert config == installed_share / "config" / "map_builder.yaml"
    assert config.is_file()
    assert list(yaml.safe_load(config.read_text())) == [launched.node.name]
    assert launched.node.parameters[0] == str(config)


def test_declares_the_documented_arguments(installed_share):
    arguments = run_launch(LAUNCH, installed_share).arguments
    assert set(arguments) == ARGUMENTS
    assert all(argument.description for argument in arguments.values())


def test_the_path_arguments_set_node_parameters_and_empty_ones_keep_the_files(installed_share):
    given = {"bag": "/data/run1", "model": "/m/tiny.safetensors", "map": "/maps/run1.lmap"}
    _, overrides = run_launch(LAUNCH, installed_share, **given).node.parameters
    assert overrides == {
        **{PATH_ARGUMENTS[a]: v for a, v in given.items()}, "use_sim_time": False
    }  # fmt: skip
    _, overrides = run_launch(LAUNCH, installed_share, model=" ").node.parameters
    assert overrides == {"use_sim_time": False}  # bag and map default to '', model:=' '
    assert set(PATH_ARGUMENTS.values()) <= _node_parameters()


@pytest.mark.parametrize(("given", "expected"), [("true", True), ("True", True), ("1", True),
                                                 ("false", False), ("no", False)])  # fmt: skip
def test_use_sim_time(installed_share, given, expected):
    _, overrides = run_launch(LAUNCH, installed_share, use_sim_time=given).node.parameters
    assert overrides["use_sim_time"] is expected


def test_with_a_namespace_the_file_becomes_a_parameter_dict(installed_share):
    """A file keyed `map_builder_node` would not apply to /ns/map_builder_node."""
    config = str(ROOT / "config" / "map_builder.yaml")
    assert parameters_for(config, "map_builder_node", "") == config
    assert parameters_for(config, "map_builder_node", "/") == config
    params = parameters_for(config, "map_builder_node", "/car1")
    # what the launch file passes
    node = run_launch(LAUNCH, installed_share, config=config, namespace="/car1").node
    assert node.namespace == "/car1"
    assert node.parameters[0] == params
    node = run_launch(LAUNCH, installed_share, config=config).node
    assert (node.namespace, node.parameters[0]) == ("", config)
    flat = {k for k, v in params.items() if not isinstance(v, dict)}
    assert flat
    assert flat <= _node_parameters()


@pytest.mark.launch_ros
def test_generate_launch_description_with_launch_ros(tmp_path):
    # launch_ros first: without ROS, `launch` would be this repository's launch/ folder
    pytest.importorskip("launch_ros", reason="ROS 2 launch_ros is not installed (no ROS)")
    launch = pytest.importorskip("launch", reason="ROS 2 launch is not installed (no ROS)")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("build_map_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    entities = description.entities
    names = {e.name for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert names == ARGUMENTS
    (opaque,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    context = launch.LaunchContext()
    context.launch_configurations.update(
        {
            "bag": str(tmp_path / "bag"),
            "model": "m.safetensors",
            "map": "",
            "config": str(ROOT / "config" / "map_builder.yaml"),
            "use_sim_time": "true",
            "namespace": "",
        }
    )
    (node,) = opaque.execute(context)
    assert isinstance(node, Node)
    assert node.node_package == "liploc_ros"
    assert node.node_executable == "map_builder_node"
