"""launch/localize.launch.py, run against a stand-in for the launch API everywhere (which
arguments it declares, the node it starts, with which parameters) and with ROS 2 launch where
that is installed; and ``liploc run-localizer``, which starts the same node from the same
YAML without launch."""

from __future__ import annotations

import argparse
import configparser
import importlib
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from launch_file_helpers import Shutdown, console_scripts, load_launch_file, run_launch

from liploc_ros.param_files import parameters_for

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "localize.launch.py"
ALLOWED_IMPORT_ROOTS = {"launch", "launch_ros", "ament_index_python", "liploc_ros"}
ARGUMENTS = {"map", "model", "image_topic", "device", "config", "use_sim_time", "namespace"}
#: launch argument -> the node parameter it sets when it is not empty
NODE_ARGUMENTS = {"map": "map_path", "model": "model", "device": "device"}


def _node_parameters() -> set[str]:
    """The parameters localizer_node declares (rclpy is needed to say)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig
    from liploc_ros.ros.params import parameter_names

    return set(parameter_names(LocalizerNodeConfig))


def test_loads_with_only_the_launch_apis():
    loaded = load_launch_file(LAUNCH)
    assert loaded.imports <= ALLOWED_IMPORT_ROOTS, loaded.imports - ALLOWED_IMPORT_ROOTS
    assert {"launch", "launch_ros"} <= loaded.imports
    assert callable(loaded.module.generate_launch_description)


def test_starts_the_installed_localizer_node(installed_share):
    node = run_launch(LAUNCH, installed_share).node
    assert (node.package, node.executable) == ("liploc_ros", "localizer_node")
    assert console_scripts()["localizer_node"] == "liploc_ros.ros.localizer_node:main"
    # a fatal start-up error (missing map, mismatched model) ends the launch
    assert isinstance(node.process["on_exit"], Shutdown)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/liploc_ros"
    assert (installed_share / "launch" / LAUNCH.name).is_file()  # installed with the package
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    module, function = console_scripts()["localizer_node"].split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_the_default_parameter_file_is_the_installed_nodes(installed_share):
    launched = run_launch(LAUNCH, installed_share)
    config = Path(launched.configurations["config"])
    assert config == installed_share / "config" / "localizer.yaml"
    data = yaml.safe_load(config.read_text())
    assert list(data) == ["localizer_node"] == [launched.node.name]  # the name launch gives it
    assert launched.node.parameters[0] == str(config)


def test_declares_the_documented_arguments_mapped_to_node_parameters(installed_share):
    arguments = run_launch(LAUNCH, installed_share).arguments
    assert set(arguments) == ARGUMENTS
    assert all(argument.description for argument in arguments.values())
    given = {"map": "/maps/town.lmap", "model": "/m/tiny.safetensors", "device": "cpu"}
    _, overrides = run_launch(LAUNCH, installed_share, **given).node.parameters
    assert overrides == {
        **{NODE_ARGUMENTS[a]: v for a, v in given.items()}, "use_sim_time": False
    }  # fmt: skip
    # arguments left empty keep the file's values
    _, overrides = run_launch(LAUNCH, installed_share, model="").node.parameters
    assert overrides == {"use_sim_time": False}
    assert {*NODE_ARGUMENTS.values(), "image_topics"} <= _node_parameters()


def test_image_topic_becomes_the_image_topics_list(installed_share):
    """image_topic:=a,b is the node's image_topics: [a, b]."""
    topics = " /a/image_raw, /b/image_raw/compressed,, "
    _, overrides = run_launch(LAUNCH, installed_share, image_topic=topics).node.parameters
    assert overrides["image_topics"] == ["/a/image_raw", "/b/image_raw/compressed"]
    _, overrides = run_launch(LAUNCH, installed_share, use_sim_time="true").node.parameters
    assert "image_topics" not in overrides  # the file's
    assert overrides["use_sim_time"] is True


def test_with_a_namespace_the_file_becomes_a_parameter_dict(installed_share):
    """A file keyed `localizer_node` would not apply to /ns/localizer_node."""
    config = str(ROOT / "config" / "localizer.yaml")
    assert parameters_for(config, "localizer_node", "") == config
    params = parameters_for(config, "localizer_node", "/car1")
    assert params["base_frame"] == "base_link"
    assert params["localizer"]["top_k"] == 5
    # what the launch file passes
    node = run_launch(LAUNCH, installed_share, config=config, namespace="/car1").node
    assert node.namespace == "/car1"
    assert node.parameters[0] == params
    node = run_launch(LAUNCH, installed_share, config=config).node
    assert (node.namespace, node.parameters[0]) == ("", config)


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
