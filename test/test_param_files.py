"""The node parameter files (config/*.yaml) and the node configs describe the same parameters.

Every parameter is described once, on its dataclass field (liploc_ros.config_fields.param);
these tests hold the shipped parameter files to those fields: every parameter is in its file
(a key ROS cannot hold, such as an unset optional, commented out), with a comment, and the
file has no key that is not a parameter. They also pin the closed sets (Choice enums) to the
plain strings that YAML and ROS give.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from liploc_ros.config import from_dict, to_dict
from liploc_ros.config_fields import Choice, config_docs, config_leaves
from liploc_ros.errors import ConfigError
from liploc_ros.ros.localizer_params import LocalizerNodeConfig
from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig

CONFIG = Path(__file__).resolve().parent.parent / "config"
#: node name (the parameter file's top-level key) -> the config of its parameters
NODES: dict[str, type] = {
    "localizer_node": LocalizerNodeConfig,
    "map_builder_node": MapBuilderNodeConfig,
}
#: files of other packages' nodes that we ship, file name -> node: robot_localization's
#: ekf_node for launch/localize_ekf.launch.py. Its parameters are robot_localization's, not a
#: config of ours: test/ros/test_ros_ekf_launch.py holds it to that node's documented ones.
FOREIGN = {"ekf_liploc.yaml": "ekf_filter_node"}
#: what the files leave empty for the launch files to fill in
REQUIRED = {"model": "m.safetensors", "map_path": "m.lmap"}
#: a commented-out key inside ros__parameters: "      # some_key: 0.0   # ..."
_COMMENTED_KEY = re.compile(r"^(\s{4,})# ([a-z_][a-z0-9_]*): (.*)$")
_KEY = re.compile(r"^\s+([a-z_][a-z0-9_]*):(.*)$")


def _parameter_files() -> list[tuple[Path, str]]:
    """(file, node name) of every config/*.yaml that is a ROS 2 parameter file."""
    found = []
    for path in sorted(CONFIG.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for node, section in data.items():
            if FOREIGN.get(path.name) == node:
                continue
            if isinstance(section, dict) and "ros__parameters" in section:
                found.append((path, node))
    return found


def _uncommented(text: str) -> str:
    """The file with its commented-out parameter keys made keys again."""
    return "\n".join(
        f"{m.group(1)}{m.group(2)}: {m.group(3)}" if (m := _COMMENTED_KEY.match(line)) else line
        for line in text.splitlines()
    )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _section(text: str, node: str) -> dict[str, Any]:
    return yaml.safe_load(text)[node]["ros__parameters"]


FILES = _parameter_files()


def test_every_parameter_file_belongs_to_a_node_config():
    assert {node for _, node in FILES} == set(NODES), FILES
    for name, node in FOREIGN.items():  # an exemption names a file that is there
        assert node in yaml.safe_load((CONFIG / name).read_text()), name


@pytest.mark.parametrize(("path", "node"), FILES, ids=[n for _, n in FILES])
def test_the_file_lists_every_parameter_and_nothing_else(path, node):
    names = set(config_docs(NODES[node]))
    in_file = set(_flatten(_section(_uncommented(path.read_text()), node)))
    assert not names - in_file, f"{path.name} lacks parameters {sorted(names - in_file)}"
    assert not in_file - names, f"{path.name} has unknown keys {sorted(in_file - names)}"


@pytest.mark.parametrize(("path", "node"), FILES, ids=[n for _, n in FILES])
def test_every_key_of_the_file_has_a_comment(path, node):
    text = _uncommented(path.read_text())
    body = text.split("ros__parameters:", 1)[1]
    for line in body.splitlines():
        key = _KEY.match(line)
        if not key:
            continue
        value = key.group(2).split("#", 1)[0].strip()
        if value:  # a section header ("localizer:") needs no comment: its keys have theirs
            assert "#" in key.group(2), f"{path.name}: no comment on {line.strip()!r}"


@pytest.mark.parametrize(("path", "node"), FILES, ids=[n for _, n in FILES])
def test_the_file_states_the_defaults_and_its_examples_are_valid(path, node):
    """A key left out keeps its default, so the file's set keys must be the defaults; the
    commented-out examples must be values the config accepts."""
    cls = NODES[node]
    stated = from_dict(cls, {**_section(path.read_text(), node), **REQUIRED})
    assert stated == cls(**REQUIRED)
    from_dict(cls, {**_section(_uncommented(path.read_text()), node), **REQUIRED})


@pytest.mark.parametrize("cls", NODES.values(), ids=NODES.keys())
def test_every_parameter_has_a_description(cls):
    docs = config_docs(cls)
    assert docs
    empty = [name for name, text in docs.items() if not text.strip()]
    assert not empty, f"{cls.__name__}: parameters without a description: {empty}"


def _choices() -> list[tuple[type, str, type[Choice]]]:
    return [
        (cls, name, tp)
        for cls in NODES.values()
        for name, _, tp in config_leaves(cls)
        if isinstance(tp, type) and issubclass(tp, Choice)
    ]


def _nested(name: str, value: Any) -> dict[str, Any]:
    *sections, leaf = name.split(".")
    data: dict[str, Any] = {leaf: value}
    for section in reversed(sections):
        data = {section: data}
    return {**data, **REQUIRED}


def _get(obj: Any, name: str) -> Any:
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_public_closed_sets_are_choices():
    names = {name for _, name, _ in _choices()}
    assert {"precision", "odometry_source"} <= names
    # `mode` is open (plug-ins register modes): the mode registry validates it instead
    assert "mode" not in names
    assert {"pose_type", "reliability", "build.precision", "build.dtype"} <= names
    assert {"bag.pose_source", "bag.anchor", "bag.odometry_source"} <= names


@pytest.mark.parametrize(
    ("cls", "name", "choice"), _choices(), ids=lambda v: getattr(v, "__name__", v)
)
def test_a_choice_takes_and_equals_its_plain_strings(cls, name, choice):
    assert isinstance(_get(cls(**REQUIRED), name), choice)  # the default is a member
    for value in choice.values():
        cfg = from_dict(cls, _nested(name, value))
        got = _get(cfg, name)
        assert got is choice(value)
        assert got == value
        assert f"{got}" == str(got) == value
        assert {value: 1}[got] == 1
        assert _get(from_dict(cls, to_dict(cfg)), name) is got
        assert value in yaml.safe_dump(to_dict(cfg))  # YAML-safe: to_dict gives plain strings
    allowed = ", ".join(map(repr, choice.values()))
    with pytest.raises(ConfigError, match=re.escape(f"'bogus' is not one of {allowed}")):
        from_dict(cls, _nested(name, "bogus"))


@pytest.mark.parametrize(
    ("cls", "name", "choice"), _choices(), ids=lambda v: getattr(v, "__name__", v)
)
def test_a_config_built_in_python_holds_members_and_lists_the_values(cls, name, choice):
    *sections, leaf = name.split(".")
    owner = cls if not sections else type(_get(cls(**REQUIRED), ".".join(sections)))
    kwargs = REQUIRED if owner is cls else {}
    value = choice.values()[-1]
    assert isinstance(getattr(owner(**kwargs, **{leaf: value}), leaf), choice)
    allowed = ", ".join(choice.values())
    with pytest.raises(ConfigError, match=re.escape(f"{leaf} must be one of {allowed}, got 'x'")):
        owner(**kwargs, **{leaf: "x"})


def test_a_config_repr_reads_as_with_plain_strings():
    cfg = LocalizerNodeConfig(**REQUIRED, mode="single")
    assert "mode='single'" in repr(cfg)
    assert dataclasses.replace(cfg, mode="sequence").mode == "sequence"
