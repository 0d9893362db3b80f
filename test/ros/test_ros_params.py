"""ROS parameters <-> typed configs (liploc_ros.ros.params), with a real rclpy node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")

from rcl_interfaces.msg import ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter

from liploc_ros.config_fields import check_bounds, config_docs, param
from liploc_ros.errors import ConfigError
from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
from liploc_ros.ros.params import (
    ParameterError,
    declare_config,
    parameter_names,
    read_config,
)

pytestmark = pytest.mark.ros
CONFIG = Path(__file__).resolve().parents[2] / "config" / "map_builder.yaml"


@dataclass(frozen=True)
class Inner:
    gain: float = 1.5
    mode: Literal["fast", "exact"] = "fast"
    label: str | None = None

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ConfigError(f"gain must be positive, got {self.gain}")


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = 3
    flag: bool = True
    values: tuple[float, ...] = (0.0, 1.0)
    inner: Inner = field(default_factory=Inner)


def _node(context, name: str = "params_test", **overrides) -> Node:
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    return Node(name, context=context, parameter_overrides=params)


def test_declares_every_field_with_a_descriptor(ros_context):
    node = _node(ros_context)
    names = declare_config(node, Outer, {"inner.gain": "how much"})
    assert names == ["name", "count", "flag", "values", "inner.gain", "inner.mode", "inner.label"]
    assert names == parameter_names(Outer)
    descriptors = dict(zip(names, node.describe_parameters(names), strict=True))
    assert descriptors["inner.gain"].description == "how much"
    assert descriptors["inner.gain"].read_only
    assert "fast, exact" in descriptors["inner.mode"].additional_constraints
    assert node.get_parameter("values").value == [0.0, 1.0]
    assert node.get_parameter("inner.label").type_ == Parameter.Type.NOT_SET
    assert read_config(node, Outer) == Outer()
    node.destroy_node()


def test_reads_overrides_into_the_config(ros_context):
    node = _node(ros_context, count=7, values=[1, 2, 3], **{"inner.gain": 2, "inner.label": "a"})
    declare_config(node, Outer, {})
    cfg = read_config(node, Outer)
    # an integer is accepted for a float (ROS types "2" as an integer)
    assert cfg == Outer(count=7, values=(1.0, 2.0, 3.0), inner=Inner(gain=2.0, label="a"))
    assert isinstance(cfg.inner.gain, float)
    node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"inner.gain": "abc"}, "parameter 'inner.gain': expected a number, got 'abc'"),
        ({"inner.gain": -1.0}, "parameter 'inner.gain': gain must be positive"),
        ({"inner.mode": "slow"}, "parameter 'inner.mode': 'slow' is not one of"),
        ({"count": 2.5}, "parameter 'count': expected an integer"),
        ({"flag": "yes"}, "parameter 'flag': expected true or false"),
    ],
)
def test_bad_values_name_the_parameter(ros_context, overrides, message):
    node = _node(ros_context, **overrides)
    declare_config(node, Outer, {})
    with pytest.raises(ParameterError) as info:
        read_config(node, Outer)
    assert str(info.value).startswith(message)
    node.destroy_node()


def test_map_builder_parameters_match_the_shipped_yaml(ros_context):
    """Every key of config/map_builder.yaml is a declared parameter of the node, with a
    description, and the file's values make a valid config."""
    data = yaml.safe_load(CONFIG.read_text())
    params = data["map_builder_node"]["ros__parameters"]

    def flatten(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flatten(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    flat = dict(flatten(params))
    declared = parameter_names(MapBuilderNodeConfig)
    assert set(flat) <= set(declared), set(flat) - set(declared)
    top = {n for n in declared if "." not in n} | {n for n in declared if n.startswith("build.")}
    assert top <= set(flat), f"keys missing from the YAML: {top - set(flat)}"
    missing = [n for n, text in config_docs(MapBuilderNodeConfig).items() if not text.strip()]
    assert not missing, f"parameters without a description: {missing}"

    overrides = {**flat, "model": "m.safetensors", "map_path": "out.lmap"}
    node = _node(ros_context, "map_builder_node", **overrides)
    declare_config(node, MapBuilderNodeConfig)
    cfg = read_config(node, MapBuilderNodeConfig)
    assert cfg.build.keyframe_distance == flat["build.keyframe_distance"]
    assert cfg.bag.pose_source == flat["bag.pose_source"]
    node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"model": ""}, "model"),
        ({"build.keyframe_distance": -1.0}, "build.keyframe_distance"),
        ({"build.dtype": "float64"}, "build.dtype"),
        ({"build.headings": [0.0, 360.0]}, "build.headings"),
        ({"build.headings": ["front"]}, "build.headings"),
        ({"bag.points_topic": "relative"}, "bag.points_topic"),
        ({"base_to_lidar": [1.0, 2.0]}, "base_to_lidar"),
        ({"reliability": "sometimes"}, "reliability"),
        ({"queue_depth": 0}, "queue_depth"),
    ],
)
def test_map_builder_parameter_errors(ros_context, overrides, name):
    node = _node(ros_context, "map_builder_node", **{"model": "m", "map_path": "o", **overrides})
    declare_config(node, MapBuilderNodeConfig)
    with pytest.raises(ParameterError, match=rf"^parameter '{name}': "):
        read_config(node, MapBuilderNodeConfig)
    node.destroy_node()


def test_build_headings_is_a_double_array_that_takes_integers(ros_context):
    node = _node(ros_context, "map_builder_node", model="m", map_path="o")
    declare_config(node, MapBuilderNodeConfig)
    (desc,) = node.describe_parameters(["build.headings"])
    assert desc.type == ParameterType.PARAMETER_DOUBLE_ARRAY
    assert "one map entry per keyframe and heading" in desc.description
    assert node.get_parameter("build.headings").value == [0.0]
    assert read_config(node, MapBuilderNodeConfig).build.headings == (0.0,)
    node.destroy_node()
    node = _node(ros_context, "map_builder_node", model="m", map_path="o",
                 **{"build.headings": [270, 90]})  # fmt: skip
    declare_config(node, MapBuilderNodeConfig)
    assert read_config(node, MapBuilderNodeConfig).build.headings == (90.0, 270.0)
    node.destroy_node()


def test_parameter_types_follow_the_fields(ros_context):
    node = _node(ros_context)
    declare_config(node, Outer, {})
    (desc,) = node.describe_parameters(["values"])
    assert desc.type == ParameterType.PARAMETER_DOUBLE_ARRAY
    node.destroy_node()


def test_descriptions_and_choices_come_from_the_fields(ros_context):
    """`ros2 param describe` shows the field's own text; a Choice is a string parameter whose
    constraint lists its values, declared and read back as plain strings."""
    node = _node(ros_context, "map_builder_node", model="m", map_path="o",
                 **{"reliability": "reliable", "bag.anchor": "lidar"})  # fmt: skip
    names = declare_config(node, MapBuilderNodeConfig)
    docs = config_docs(MapBuilderNodeConfig)
    for name, desc in zip(names, node.describe_parameters(names), strict=True):
        assert desc.description == docs[name]
    (desc,) = node.describe_parameters(["build.dtype"])
    assert desc.type == ParameterType.PARAMETER_STRING
    assert desc.additional_constraints == "one of: float32, float16"
    assert type(node.get_parameter("build.dtype").value) is str
    cfg = read_config(node, MapBuilderNodeConfig)
    assert cfg.reliability == "reliable"
    assert cfg.bag.anchor == "lidar"
    assert type(cfg.reliability).__name__ == "Reliability"
    node.destroy_node()
    node = _node(ros_context, "map_builder_node", model="m", map_path="o", pose_type="imu")
    declare_config(node, MapBuilderNodeConfig)
    with pytest.raises(ParameterError, match=r"^parameter 'pose_type': .*'odometry'"):
        read_config(node, MapBuilderNodeConfig)
    node.destroy_node()


@dataclass(frozen=True)
class Bounded:
    """Ranges written beside the fields, checked by check_bounds and declared to ROS."""

    rate: float = param(2.0, "a rate", gt=0)
    share: float = param(0.5, "a share", ge=0, le=1)
    count: int = param(3, "a count", ge=1)
    free: float = 1.0

    def __post_init__(self) -> None:
        check_bounds(self)


def test_field_ranges_are_declared_to_ros(ros_context):
    node = _node(ros_context)
    names = declare_config(node, Bounded, dynamic={"share"})
    rate, share, count, free = node.describe_parameters(names)
    assert [(r.from_value, r.to_value) for r in share.floating_point_range] == [(0.0, 1.0)]
    assert rate.floating_point_range[0].from_value == 0.0
    assert rate.floating_point_range[0].to_value == float("inf")
    assert rate.additional_constraints == "a finite number > 0"
    assert (count.integer_range[0].from_value, count.integer_range[0].to_value) == (1, 2**63 - 1)
    assert not free.floating_point_range
    assert not free.integer_range
    assert (rate.read_only, share.read_only, count.read_only) == (True, False, True)
    # ROS itself refuses a value outside the declared range while the node runs
    result = node.set_parameters([Parameter("share", value=1.5)])[0]
    assert not result.successful
    assert "out of range" in result.reason
    assert node.get_parameter("share").value == 0.5
    node.destroy_node()


def test_an_override_outside_the_range_gets_the_configs_message(ros_context):
    # rclpy would refuse it at declaration with its own exception; the config names it
    node = _node(ros_context, count=0)
    declare_config(node, Bounded)
    with pytest.raises(ParameterError, match=r"parameter 'count': count must be a positive"):
        read_config(node, Bounded)
    node.destroy_node()


def test_updated_config_checks_changes_like_start_up():
    from liploc_ros.ros.localizer_params import DYNAMIC_PARAMETERS, LocalizerNodeConfig
    from liploc_ros.ros.params import updated_config

    cfg = LocalizerNodeConfig(model="m", map_path="x")
    new = updated_config(LocalizerNodeConfig, cfg, {"sequence.target_precision": 0.995,
                         "diagnostics_period": 2}, DYNAMIC_PARAMETERS)  # fmt: skip
    assert (new.sequence.target_precision, new.diagnostics_period) == (0.995, 2.0)
    assert cfg.sequence.target_precision == 0.99  # the running config is untouched
    cases = [
        ({"sequence.target_precision": 1.5}, "parameter 'sequence.target_precision': "),
        ({"sequence.keep_probability": 0.995}, "target_precision"),
        ({"localizer.top_k": 0}, "parameter 'localizer.top_k': top_k must be a positive"),
        ({"model": "other"}, "parameter 'model' is read-only while the node runs"),
        ({"sequence.particles": 50}, "'sequence.particles' is read-only"),
    ]
    for change, message in cases:
        with pytest.raises(ParameterError, match=message):
            updated_config(LocalizerNodeConfig, cfg, change, DYNAMIC_PARAMETERS)


def test_every_dynamic_parameter_exists_and_model_map_and_particles_are_fixed():
    from liploc_ros.ros.localizer_params import DYNAMIC_PARAMETERS, LocalizerNodeConfig

    names = set(parameter_names(LocalizerNodeConfig))
    assert names >= DYNAMIC_PARAMETERS, DYNAMIC_PARAMETERS - names
    fixed = {"model", "map_path", "backend", "precision", "device", "mode", "image_topics",
             "sequence.particles", "sequence.seed", "sequence.entry_radius_m"}  # fmt: skip
    assert not fixed & DYNAMIC_PARAMETERS
