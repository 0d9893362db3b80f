"""The localizer settings of ``liploc localize``: the ``localizer`` and ``sequence``
sections of ``--config`` (the node's parameter file, or a plain YAML file with those
sections), with the command's flags over them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from liploc_ros.config import from_dict, load_yaml
from liploc_ros.errors import ConfigError

__all__ = ["localizer_config", "read_config_file", "sequence_config"]

_NODE = "localizer_node"
_SECTION = "localizer"
#: flag -> LocalizerConfig field
_CONFIG_FLAGS = ("top_k", "max_spread_m", "target_precision")


def read_config_file(path: Path) -> dict[str, Any]:
    """The keys the ``localizer`` section of ``path`` sets (validated)."""
    from liploc_ros.localization.config import LocalizerConfig

    data = load_yaml(path)
    if _NODE in data:
        node = data[_NODE]
        params = node.get("ros__parameters") if isinstance(node, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: {_NODE} has no ros__parameters mapping")
        where = f"{_NODE}.ros__parameters.{_SECTION}"
    else:
        params, where = data, _SECTION
        unknown = sorted(set(params) - {_SECTION, "sequence", "mode"})
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; expected a "
                f"{_SECTION} section, or the ROS 2 layout {_NODE}: ros__parameters: {{...}}"
            )
    section = params.get(_SECTION) or {}
    try:
        from_dict(LocalizerConfig, section, where)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    return dict(section)


def sequence_config(args: argparse.Namespace) -> Any:
    """The ``sequence`` section of ``--config`` (either layout) as a SequenceConfig."""
    from liploc_ros.localization.sequence_config import SequenceConfig

    values: dict[str, Any] = {}
    where = "sequence"
    if args.config:
        data = load_yaml(args.config)
        params = data.get(_NODE, {}).get("ros__parameters", {}) if _NODE in data else data
        section = f"{_NODE}.ros__parameters.sequence" if _NODE in data else "sequence"
        where = f"{args.config}: {section}"
        values = dict(params.get("sequence") or {})
    target = getattr(args, "target_precision", None)
    if target is not None:
        values["target_precision"] = target
        values["keep_probability"] = min(
            values.get("keep_probability", SequenceConfig().keep_probability),
            target,
        )
    return from_dict(SequenceConfig, values, where)


def localizer_config(args: argparse.Namespace) -> Any:
    from liploc_ros.localization.config import LocalizerConfig

    values = read_config_file(args.config) if args.config else {}
    for flag in _CONFIG_FLAGS:
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    return from_dict(LocalizerConfig, values)
