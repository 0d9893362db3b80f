"""Running the launch files without ROS 2 launch (launch_ros is not installable with pip):
a stand-in for the slice of the launch and launch_ros APIs they use, which records what a
launch file declares and the node it starts, with which parameters; and what setup.py
installs, so that the share folder the launch files look in can be made for a test."""

from __future__ import annotations

import builtins
import importlib.util
import os
import runpy
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "liploc_ros"


# -- what setup.py installs ------------------------------------------------------------------


def setup_arguments() -> dict[str, Any]:
    """What setup.py passes to setuptools.setup, run as pip or colcon runs it (from the
    repository root)."""
    captured: dict[str, Any] = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with mock.patch("setuptools.setup", lambda **kwargs: captured.update(kwargs)):
            runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        os.chdir(cwd)
    return captured


def console_scripts() -> dict[str, str]:
    """name -> 'module:function' of setup.py's console_scripts."""
    entries = setup_arguments()["entry_points"]["console_scripts"]
    return dict(tuple(part.strip() for part in entry.split("=", 1)) for entry in entries)


def install_data_files(prefix: Path) -> Path:
    """setup.py's data_files under ``prefix`` (as links to the repository's files), as an
    install puts them; returns the package's share folder, prefix/share/liploc_ros."""
    for folder, files in setup_arguments()["data_files"]:
        (prefix / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            (prefix / folder / Path(name).name).symlink_to(ROOT / name)
    return prefix / "share" / PACKAGE


# -- the stand-in launch API -------------------------------------------------------------------


class LaunchContext:
    def __init__(self, share_dirs: dict[str, Path]) -> None:
        self.launch_configurations: dict[str, str] = {}
        self.share_dirs = share_dirs


def perform(value: Any, context: LaunchContext) -> str:
    """A substitution, a string or a list of them, as launch performs it."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "".join(perform(v, context) for v in value)
    return value.perform(context)


class LaunchConfiguration:
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        self.variable_name, self.default = variable_name, default

    def perform(self, context: LaunchContext) -> str:
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise KeyError(f"launch configuration '{self.variable_name}' does not exist")
        return perform(self.default, context)


class PathJoinSubstitution:
    def __init__(self, substitutions: list) -> None:
        self.substitutions = substitutions

    def perform(self, context: LaunchContext) -> str:
        return os.path.join(*(perform(s, context) for s in self.substitutions))


class FindPackageShare:
    def __init__(self, package: str) -> None:
        self.package = package

    def perform(self, context: LaunchContext) -> str:
        if self.package not in context.share_dirs:
            raise LookupError(f"package '{self.package}' not found")
        return str(context.share_dirs[self.package])


class DeclareLaunchArgument:
    def __init__(self, name: str, *, default_value: Any = None, description: str | None = None,
                 choices: list[str] | None = None) -> None:  # fmt: skip
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices


class OpaqueFunction:
    def __init__(self, *, function, args: list | None = None, kwargs: dict | None = None):
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}

    def execute(self, context: LaunchContext) -> list:
        return list(self.function(context, *self.args, **self.kwargs) or [])


class Shutdown:
    def __init__(self, *, reason: str = "reason not given") -> None:
        self.reason = reason


class LaunchDescription:
    def __init__(self, initial_entities: list | None = None) -> None:
        self.entities = list(initial_entities or [])


#: ExecuteProcess's keywords, which launch_ros's Node passes on
_PROCESS_KEYWORDS = {
    "output", "emulate_tty", "on_exit", "respawn", "respawn_delay", "cwd", "env",
    "additional_env", "prefix", "sigterm_timeout", "sigkill_timeout",
}  # fmt: skip


class Node:
    def __init__(
        self,
        *,
        executable: str,
        package: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        exec_name: str | None = None,
        parameters: list | None = None,
        remappings: list | None = None,
        ros_arguments: list | None = None,
        arguments: list | None = None,
        **process: Any,
    ) -> None:
        unknown = set(process) - _PROCESS_KEYWORDS
        if unknown:
            raise TypeError(f"Node() got unexpected keyword arguments {sorted(unknown)}")
        self.executable, self.package, self.name = executable, package, name
        self.namespace, self.exec_name = namespace, exec_name
        self.parameters, self.remappings = parameters or [], remappings or []
        self.ros_arguments, self.arguments = ros_arguments or [], arguments or []
        self.process = process


def _module(name: str, **members: Any) -> types.ModuleType:
    out = types.ModuleType(name)
    out.__dict__.update(members)
    return out


def _stand_in_modules() -> dict[str, types.ModuleType]:
    actions = _module(
        "launch.actions",
        DeclareLaunchArgument=DeclareLaunchArgument,
        OpaqueFunction=OpaqueFunction,
        Shutdown=Shutdown,
    )
    substitutions = _module(
        "launch.substitutions",
        LaunchConfiguration=LaunchConfiguration,
        PathJoinSubstitution=PathJoinSubstitution,
    )
    ros_actions = _module("launch_ros.actions", Node=Node)
    ros_substitutions = _module("launch_ros.substitutions", FindPackageShare=FindPackageShare)
    launch = _module(
        "launch",
        LaunchDescription=LaunchDescription,
        LaunchContext=LaunchContext,
        actions=actions,
        substitutions=substitutions,
    )
    launch_ros = _module("launch_ros", actions=ros_actions, substitutions=ros_substitutions)
    return {
        "launch": launch,
        "launch.actions": actions,
        "launch.substitutions": substitutions,
        "launch_ros": launch_ros,
        "launch_ros.actions": ros_actions,
        "launch_ros.substitutions": ros_substitutions,
    }


@contextmanager
def _stand_in_launch() -> Iterator[None]:
    modules = _stand_in_modules()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


# -- loading and running a launch file ---------------------------------------------------------


@dataclass
class LaunchFile:
    module: types.ModuleType
    #: the top-level packages the file imports when loaded
    imports: set[str] = field(default_factory=set)


def load_launch_file(path: Path) -> LaunchFile:
    """The launch file run as ``ros2 launch`` loads it, with the stand-in launch API."""
    imports: set[str] = set()

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            imports.add(name.split(".")[0])
        return builtins.__import__(name, globals, locals, fromlist, level)

    spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = {**builtins.__dict__, "__import__": recording_import}
    with _stand_in_launch():
        spec.loader.exec_module(module)
    return LaunchFile(module, imports)


@dataclass
class Launched:
    arguments: dict[str, DeclareLaunchArgument]
    #: the launch configurations: the arguments given, else their defaults
    configurations: dict[str, str]
    nodes: list[Node]

    @property
    def node(self) -> Node:
        (node,) = self.nodes
        return node


def run_launch(path: Path, share: Path, **arguments: str) -> Launched:
    """``ros2 launch liploc_ros <file> name:=value ...`` with the package's share folder at
    ``share``: the declared arguments, the configurations and the nodes it would start."""
    description = load_launch_file(path).module.generate_launch_description()
    context = LaunchContext({PACKAGE: share})
    declared: dict[str, DeclareLaunchArgument] = {}
    nodes: list[Node] = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            declared[entity.name] = entity
            if entity.name in arguments:
                context.launch_configurations[entity.name] = arguments[entity.name]
            elif entity.default_value is not None:
                value = perform(entity.default_value, context)
                context.launch_configurations[entity.name] = value
            else:
                raise ValueError(f"required launch argument '{entity.name}' was not given")
        elif isinstance(entity, OpaqueFunction):
            nodes += entity.execute(context)
        else:
            raise TypeError(f"the stand-in does not run {type(entity).__name__}")
    undeclared = set(arguments) - set(declared)
    if undeclared:
        raise ValueError(f"{path.name} declares no argument {sorted(undeclared)}")
    return Launched(declared, dict(context.launch_configurations), nodes)
