"""launch/build_map.launch.py: what can be checked without launch_ros, and more where it is."""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from launch_file_helpers import console_scripts, import_roots, keyword_strings, parse_launch

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "build_map.launch.py"
ALLOWED_IMPORT_ROOTS = {"launch", "launch_ros", "ament_index_python", "liploc_ros"}
ARGUMENTS = {"bag", "model", "map", "config", "use_sim_time", "namespace"}


def _tree() -> ast.Module:
    return parse_launch(LAUNCH)


def _keyword_strings(keyword: str) -> list[str]:
    return keyword_strings(_tree(), keyword)


def test_imports_only_launch_apis():
    roots = import_roots(_tree())
    assert roots, "the launch file imports nothing?"
    assert roots <= ALLOWED_IMPORT_ROOTS, roots - ALLOWED_IMPORT_ROOTS
    names = {n.name for n in _tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def test_executables_are_installedconsole_scripts():
    scripts = console_scripts()
    executables = _keyword_strings("executable")
    assert executables == ["map_builder_node"]
    for name in executables:
        assert name in scripts, f"{name} is not a console script in setup.py"
        module, function = scripts[name].split(":")
        assert callable(getattr(importlib.import_module(module), function))
    assert _keyword_strings("package") == ["liploc_ros"]
    assert "<name>liploc_ros</name>" in (ROOT / "package.xml").read_text()
    # `ros2 run` and launch look in lib/<package>
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/liploc_ros"
    # the launch and config files are installed into share/liploc_ros
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup
    assert 'glob("config/*.yaml")' in setup


def test_named_parameter_files_exist():
    yaml_names = [
        node.value
        for node in ast.walk(_tree())
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if node.value.endswith((".yaml", ".yml"))
    ]
    assert yaml_names == ["map_builder.yaml"]
    for name in yaml_names:
        assert (ROOT / "config" / name).is_file()
    source = LAUNCH.read_text()
    assert '"config", "map_builder.yaml"' in source  # under share/liploc_ros/config


def test_declares_the_documented_arguments():
    declared = {
        node.args[0].value
        for node in ast.walk(_tree())
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert declared == ARGUMENTS
    # the path arguments map onto parameters the node declares
    from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
    from liploc_ros.ros.params import parameter_names

    mapping = re.search(r"_PATH_ARGUMENTS = (\{.*?\})", LAUNCH.read_text()).group(1)
    for parameter in ast.literal_eval(mapping).values():
        assert parameter in parameter_names(MapBuilderNodeConfig)


def test_with_a_namespace_the_file_becomes_a_parameter_dict():
    """A file keyed `map_builder_node` would not apply to /ns/map_builder_node."""
    from liploc_ros.param_files import parameters_for
    from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
    from liploc_ros.ros.params import parameter_names

    config = str(ROOT / "config" / "map_builder.yaml")
    assert parameters_for(config, "map_builder_node", "") == config
    assert parameters_for(config, "map_builder_node", "/") == config
    params = parameters_for(config, "map_builder_node", "/car1")
    flat = {k for k, v in params.items() if not isinstance(v, dict)}
    assert flat
    assert flat <= set(parameter_names(MapBuilderNodeConfig))
    source = LAUNCH.read_text()
    assert 'NODE_NAME = "map_builder_node"' in source
    assert "parameters_for(config, NODE_NAME, namespace)" in source


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
