"""ROS 2 parameter files under a namespace (no rclpy: launch files and the CLI use it).

ROS 2 applies a section of a parameter file to the node whose *full* name matches it: the
shipped files are keyed ``localizer_node`` and ``map_builder_node``, which a node started as
``/car1/localizer_node`` would silently ignore. These helpers hand such a node its section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liploc_ros.config import load_yaml
from liploc_ros.errors import ConfigError


def node_section(path: str | Path, node_name: str) -> dict[str, Any]:
    """The ``<node_name>: ros__parameters:`` mapping of a parameter file."""
    data = load_yaml(path)
    section = data.get(node_name) if isinstance(data, dict) else None
    params = section.get("ros__parameters") if isinstance(section, dict) else None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: no {node_name}: ros__parameters: section")
    return dict(params)


def parameters_for(path: str | Path, node_name: str, namespace: str) -> str | dict[str, Any]:
    """What a launch ``Node(parameters=[...])`` entry should be: the file itself without a
    namespace, else the node's section as a dict (which applies whatever the node's name)."""
    if not namespace.strip("/"):
        return str(path)
    return node_section(path, node_name)


def namespaced_file(path: str | Path, node_name: str, namespace: str) -> str:
    """The file's node section re-keyed by the full node name, as YAML text, for
    ``--params-file`` on a command line (where a dict cannot be passed)."""
    import yaml

    full_name = f"/{namespace.strip('/')}/{node_name}" if namespace.strip("/") else node_name
    return yaml.safe_dump({full_name: {"ros__parameters": node_section(path, node_name)}},
                          sort_keys=False)  # fmt: skip
