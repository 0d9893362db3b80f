"""launch/localize.launch.py (what can be checked without launch_ros, more where it is) and
``liploc run-localizer``, which starts the same node from the same YAML without launch."""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib
import importlib.util
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from launch_file_helpers import console_scripts, import_roots, keyword_strings, parse_launch

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "localize.launch.py"
ALLOWED_IMPORT_ROOTS = {"launch", "launch_ros", "ament_index_python", "liploc_ros"}
ARGUMENTS = {"map", "model", "image_topic", "device", "config", "use_sim_time", "namespace"}


def _tree() -> ast.Module:
    return parse_launch(LAUNCH)


def _keyword_strings(keyword: str) -> list[str]:
    return keyword_strings(_tree(), keyword)


def test_imports_only_launch_apis():
    roots = import_roots(_tree())
    assert roots <= ALLOWED_IMPORT_ROOTS, roots - ALLOWED_IMPORT_ROOTS
    assert {"launch", "launch_ros"} <= roots
    names = {n.name for n in _tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def test_the_executable_is_an_installed_console_script():
    scripts = console_scripts()
    assert _keyword_strings("executable") == ["localizer_node"]
    assert scripts["localizer_node"] == "liploc_ros.ros.localizer_node:main"
    assert _keyword_strings("package") == ["liploc_ros"]
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    module, function = scripts["localizer_node"].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/liploc_ros"
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup
    assert 'glob("config/*.yaml")' in setup


def test_the_named_parameter_file_exists_and_is_the_nodes():
    yaml_names = [
        node.value
        for node in ast.walk(_tree())
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if node.value.endswith((".yaml", ".yml"))
    ]
    assert yaml_names == ["localizer.yaml"]
    assert '"config", "localizer.yaml"' in LAUNCH.read_text()
    data = yaml.safe_load((ROOT / "config" / "localizer.yaml").read_text())
    assert list(data) == ["localizer_node"]  # the node's name, which launch gives it
    assert "localizer_node" in _keyword_strings("name") or "name=NODE_NAME" in LAUNCH.read_text()


def test_declares_the_documented_arguments_mapped_to_node_parameters():
    declared = {
        node.args[0].value
        for node in ast.walk(_tree())
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert declared == ARGUMENTS
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig
    from liploc_ros.ros.params import parameter_names

    mapping = re.search(r"_ARGUMENTS = (\{.*?\})", LAUNCH.read_text()).group(1)
    names = parameter_names(LocalizerNodeConfig)
    for parameter in ast.literal_eval(mapping).values():
        assert parameter in names
    assert "image_topics" in names  # image_topic:=a,b becomes this list
    assert 'overrides["image_topics"] = topics' in LAUNCH.read_text()


def test_with_a_namespace_the_file_becomes_a_parameter_dict():
    """A file keyed `localizer_node` would not apply to /ns/localizer_node."""
    from liploc_ros.param_files import parameters_for

    config = str(ROOT / "config" / "localizer.yaml")
    assert parameters_for(config, "localizer_node", "") == config
    params = parameters_for(config, "localizer_node", "/car1")
    assert params["base_frame"] == "base_link"
    assert params["localizer"]["top_k"] == 5
    assert "parameters_for(config, NODE_NAME, namespace)" in LAUNCH.read_text()


@pytest.mark.launch_ros
def test_generate_launch_description_with_launch_ros(tmp_path):
    # launch_ros first: without ROS, `launch` would be this repository's launch/ folder
    pytest.importorskip("launch_ros", reason="ROS 2 launch_ros is not installed (no ROS)")
    launch = pytest.importorskip("launch", reason="ROS 2 launch is not installed (no ROS)")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("localize_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.entities
    assert {e.name for e in entities if isinstance(e, DeclareLaunchArgument)} == ARGUMENTS
    (opaque,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    context = launch.LaunchContext()
    context.launch_configurations.update(
        {
            "map": "town.lmap",
            "model": "",
            "image_topic": "/a/image_raw, /b/image_raw/compressed",
            "device": "cpu",
            "config": str(ROOT / "config" / "localizer.yaml"),
            "use_sim_time": "true",
            "namespace": "",
        }
    )
    (node,) = opaque.execute(context)
    assert isinstance(node, Node)
    assert node.node_package == "liploc_ros"
    assert node.node_executable == "localizer_node"


# -- liploc run-localizer --------------------------------------------------------------------


def _cli_args(*argv: str) -> argparse.Namespace:
    from liploc_ros.cli import run_localizer

    parser = argparse.ArgumentParser()
    run_localizer.add_parser(parser)
    return parser.parse_args(list(argv))


def test_run_localizer_builds_the_nodes_command_line(tmp_path):
    from liploc_ros.cli.run_localizer import ros_arguments

    args = _cli_args(
        "--map", "/m/town.lmap", "--model", "/m/tiny.safetensors", "--image-topic", "/a",
        "--image-topic", "/b,/c/compressed", "--device", "cpu", "--namespace", "car1",
        "--use-sim-time", "-p", "localizer.top_k:=3",
    )  # fmt: skip
    cmd = ros_arguments(args, tmp_path / "p.yaml")
    assert cmd[:4] == ["localizer_node", "--ros-args", "--params-file", str(tmp_path / "p.yaml")]
    pairs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
    assert pairs == [
        "model:='/m/tiny.safetensors'",
        "map_path:='/m/town.lmap'",
        "image_topics:=['/a','/b','/c/compressed']",
        "device:='cpu'",
        "use_sim_time:=true",
        "localizer.top_k:=3",
    ]
    assert cmd[-2:] == ["-r", "__ns:=/car1"]
    # flags left out keep the file's values: nothing is passed for them
    assert ros_arguments(_cli_args(), tmp_path / "p.yaml")[4:] == []
    from liploc_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="NAME:=VALUE"):
        ros_arguments(_cli_args("-p", "top_k=3"), tmp_path / "p.yaml")


def test_run_localizer_rekeys_the_file_for_a_namespace(tmp_path):
    from liploc_ros.errors import ConfigError
    from liploc_ros.param_files import namespaced_file

    text = namespaced_file(ROOT / "config" / "localizer.yaml", "localizer_node", "/car1/")
    original = yaml.safe_load((ROOT / "config" / "localizer.yaml").read_text())
    assert yaml.safe_load(text) == {"/car1/localizer_node": original["localizer_node"]}
    with pytest.raises(ConfigError, match="no localizer_node: ros__parameters"):
        namespaced_file(ROOT / "config" / "map_builder.yaml", "localizer_node", "car1")


@pytest.mark.ros
@pytest.mark.slow
def test_run_localizer_runs_the_node_from_the_yaml_in_a_namespace(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    import subprocess

    from localizer_helpers import (
        STARTUP_S,
        GraphSide,
        make_map_file,
        make_model_file,
        random_image,
        ros_environment,
    )
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from liploc_ros.ros import conversions as conv

    loaded = make_model_file(tmp_path / "tiny.safetensors", size=32)
    make_map_file(tmp_path / "town.lmap", loaded)
    config = yaml.safe_load((ROOT / "config" / "localizer.yaml").read_text())
    params = config["localizer_node"]["ros__parameters"]
    params.update(publish_odom=True, base_frame="chassis", mode="single")  # only the file says so
    params["localizer"]["max_spread_m"] = 1000.0
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    env = ros_environment(211 + os.getpid() % 20)
    cmd = [sys.executable, "-m", "liploc_ros.cli", "run-localizer", "--config",
           str(tmp_path / "mine.yaml"), "--map", str(tmp_path / "town.lmap"), "--model",
           str(tmp_path / "tiny.safetensors"), "--image-topic", "/cam", "--device", "cpu",
           "--namespace", "car1"]  # fmt: skip
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ.update({k: env[k] for k in saved})
    graph = GraphSide()
    try:
        odoms = []
        graph.collect(Odometry, "/car1/localizer_node/odom", odoms)
        pub = graph.node.create_publisher(Image, "/cam", qos_profile_sensor_data)
        deadline = time.monotonic() + STARTUP_S
        while not odoms:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "node.log").read_text()
            if pub.get_subscription_count():
                header = Header(stamp=conv.seconds_to_stamp(42.0), frame_id="cam")
                pub.publish(conv.rgb_to_image(random_image(0), header=header))
            time.sleep(0.3)
        assert odoms[0].msg.child_frame_id == "chassis"
        assert conv.stamp_to_seconds(odoms[0].msg.header.stamp) == pytest.approx(42.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, (tmp_path / "node.log").read_text()
    finally:
        graph.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
