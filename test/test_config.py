"""Typed configuration: strict loading, clear errors, round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from liploc_ros.config import from_dict, load_config, to_dict
from liploc_ros.errors import ConfigError
from liploc_ros.preprocess import PreprocessConfig


@dataclass(frozen=True)
class Inner:
    size: int = 3
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    scale: float = 1.0
    limit: float | None = None
    pair: tuple[int, int] = (1, 2)
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_nested_values():
    cfg = from_dict(Outer, {"scale": 2, "inner": {"mode": "b"}, "pair": [3, 4]})
    assert cfg == Outer(scale=2.0, inner=Inner(mode="b"), pair=(3, 4))
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "y"}, "unknown key.*'nmae'"),
        ({"inner": {"sise": 1}}, "inner: unknown key.*'sise'"),
        ({"scale": "big"}, "scale: expected a number"),
        ({"inner": {"size": 2.5}}, "inner.size: expected an integer"),
        ({"inner": {"mode": "c"}}, "inner.mode: 'c' is not one of"),
        ({"pair": [1, 2, 3]}, "pair: expected 2 items"),
        ({"limit": "none"}, "limit"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_yaml_file_errors_name_the_file(tmp_path):
    good = tmp_path / "pre.yaml"
    good.write_text("lidar:\n  sensor: vlp16\n  height: 16\nlidar_image_size: 64\n")
    cfg = load_config(PreprocessConfig, good)
    assert cfg.lidar.height == 16
    assert cfg.lidar_image_size == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("lidar:\n  hieght: 16\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*hieght"):
        load_config(PreprocessConfig, bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("lidar: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        load_config(PreprocessConfig, broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(PreprocessConfig, tmp_path / "missing.yaml")


def test_validation_in_post_init_becomes_config_error():
    with pytest.raises(ConfigError, match="max_range"):
        from_dict(PreprocessConfig, {"lidar": {"max_range": -1.0}})
