"""ROS 2 parameters <-> the package's typed configs (frozen dataclasses).

A node describes its parameters once, as a frozen dataclass (nested dataclasses become dotted
names: ``build.keyframe_distance``). :func:`declare_config` declares every field up front with
a :class:`ParameterDescriptor` (the field's description, allowed values, read-only), the
dataclass default as the default value; :func:`read_config` reads them back through
:func:`liploc_ros.config.from_dict`, so a bad value fails with the same checks and messages as
a bad YAML key, and :class:`ParameterError` names the parameter.

Parameters are declared with dynamic typing and checked by the dataclass instead of by rclpy:
``-p build.keyframe_distance:=2`` (an integer to ROS) is then accepted for a float field, and
a wrong type is reported as "build.keyframe_distance: expected a number, got 'abc'" rather
than rclpy's bare InvalidParameterTypeException.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node

from liploc_ros.config import from_dict, to_dict
from liploc_ros.config_fields import Bounds, Choice, field_bounds, field_doc
from liploc_ros.errors import ConfigError

__all__ = [
    "ParameterError",
    "declare_config",
    "parameter_names",
    "read_config",
    "updated_config",
]

_INT64_MAX = 2**63 - 1

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

_SCALAR_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    Path: ParameterType.PARAMETER_STRING,
}
_ARRAY_TYPES = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}


class ParameterError(ConfigError):
    """A ROS parameter has a value its config rejects; the message names the parameter."""


def _leaves(
    cls: type, prefix: str, exclude: frozenset[str]
) -> Iterable[tuple[str, Any, Any, dataclasses.Field]]:
    """(dotted name, type, default, field) of every non-dataclass field, depth first."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = f"{prefix}{field.name}"
        if name in exclude:
            continue
        tp = hints[field.name]
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            raise ConfigError(f"{cls.__name__}.{field.name} has no default to declare")
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _leaves(tp, f"{name}.", exclude)
        else:
            yield name, tp, value, field


def parameter_names(cls: type, *, prefix: str = "", exclude: Iterable[str] = ()) -> list[str]:
    """The dotted parameter names :func:`declare_config` declares for ``cls``."""
    return [name for name, *_ in _leaves(cls, prefix, frozenset(exclude))]


def _ros_type(tp: Any) -> tuple[int, str]:
    """The ROS parameter type of a field type, and a constraint text for Literals."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):  # X | None: a parameter left unset is None
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) != 1:
            raise ConfigError(f"config field type {tp!r} has no ROS parameter equivalent")
        return _ros_type(options[0])
    if origin is Literal:
        allowed = get_args(tp)
        kind = _SCALAR_TYPES.get(type(allowed[0]), ParameterType.PARAMETER_STRING)
        return kind, f"one of: {', '.join(map(str, allowed))}"
    if isinstance(tp, type) and issubclass(tp, Choice):
        return ParameterType.PARAMETER_STRING, f"one of: {', '.join(tp.values())}"
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        item = args[0] if args else str
        return _ARRAY_TYPES.get(item, ParameterType.PARAMETER_STRING_ARRAY), ""
    if tp in _SCALAR_TYPES:
        return _SCALAR_TYPES[tp], ""
    raise ConfigError(f"config field type {tp!r} has no ROS parameter equivalent")


def _ros_value(value: Any) -> Any:
    if isinstance(value, (Path, Choice)):
        return str(value)  # a Choice: its plain string, as a YAML file would give it
    if isinstance(value, tuple):
        return list(value)
    return value


def declare_config(
    node: Node,
    cls: type,
    descriptions: Mapping[str, str] | None = None,
    *,
    prefix: str = "",
    exclude: Iterable[str] = (),
    dynamic: Collection[str] = (),
) -> list[str]:
    """Declare one parameter per field of ``cls`` (defaults from the dataclass); returns names.

    The text ``ros2 param describe`` shows is the field's own description
    (:func:`liploc_ros.config_fields.param`); ``descriptions`` (dotted names) overrides it,
    and a field with neither gets its config path. A field's range (``param(..., gt=0)``)
    is declared as the parameter's ``FloatingPointRange`` / ``IntegerRange``. Parameters
    named in ``dynamic`` may change while the node runs (the node validates each change
    with :func:`updated_config`); the rest are read-only: set at start-up (command line,
    YAML, launch), never while the node runs.
    """
    names = []
    texts = descriptions or {}
    for name, tp, value, field in _leaves(cls, prefix, frozenset(exclude)):
        kind, constraint = _ros_type(tp)
        descriptor = ParameterDescriptor(
            name=name,
            type=kind,
            description=texts.get(name) or field_doc(field) or f"{cls.__name__} field {name}",
            additional_constraints=constraint,
            read_only=name not in dynamic,
            dynamic_typing=True,
        )
        bounds = field_bounds(field)
        if bounds is not None:
            _set_range(descriptor, bounds)
        try:
            node.declare_parameter(name, _ros_value(value), descriptor)
        except InvalidParameterValueException:
            # an override outside the range: declared without it, so that read_config
            # refuses the value with the config's own message naming the parameter
            descriptor.floating_point_range, descriptor.integer_range = [], []
            node.declare_parameter(name, _ros_value(value), descriptor)
        names.append(name)
    return names


def _set_range(descriptor: ParameterDescriptor, bounds: Bounds) -> None:
    """The ROS range of ``bounds`` (ROS ranges are closed: an open end is refused by the
    config's validation, which the node runs on every value)."""
    if bounds.integer:
        low = -_INT64_MAX if math.isinf(bounds.low) else math.ceil(bounds.low)
        high = _INT64_MAX if math.isinf(bounds.high) else math.floor(bounds.high)
        descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
    else:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(bounds.low), to_value=float(bounds.high))
        ]
    descriptor.additional_constraints = bounds.text()


def updated_config(
    cls: type[T],
    current: T,
    changes: Mapping[str, Any],
    dynamic: Collection[str],
    *,
    prefix: str = "",
) -> T:
    """``current`` with ``changes`` (dotted parameter name -> new value) applied and checked
    by the config's own validation, for a node's set-parameters callback.

    Raises :class:`ParameterError` naming the parameter: one not in ``dynamic`` (read-only
    while the node runs), or a value the config rejects. ``current`` is never modified.
    """
    data = to_dict(current)
    for name, value in changes.items():
        if name not in dynamic:
            raise ParameterError(f"parameter '{name}' is read-only while the node runs")
        keys = name[len(prefix) :].split(".")
        target = data
        for key in keys[:-1]:
            target = target[key]
        if keys[-1] not in target:
            raise ParameterError(f"parameter '{name}' is not a parameter of this node")
        target[keys[-1]] = _plain(value)
    return _build(cls, data, prefix)


def _plain(value: Any) -> Any:
    """A parameter value as plain Python (rclpy gives array.array for numeric arrays)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return list(value)


def read_config(
    node: Node,
    cls: type[T],
    *,
    prefix: str = "",
    exclude: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Read the parameters declared by :func:`declare_config` into a validated ``cls``.

    ``overrides`` (dotted names) replace parameter values, e.g. for excluded fields that the
    node fills from other parameters. A rejected value raises :class:`ParameterError`
    whose message starts with the parameter's name.
    """
    data: dict[str, Any] = {}
    values = dict(overrides or {})
    for name in parameter_names(cls, prefix=prefix, exclude=exclude):
        values.setdefault(name, _plain(node.get_parameter(name).value))
    for name, value in values.items():
        if value is None:
            continue  # a parameter set to nothing keeps the dataclass default
        keys = name[len(prefix) :].split(".")
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return _build(cls, data, prefix)


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    """from_dict, nested sections first, so that an error names the full parameter."""
    hints = get_type_hints(cls)
    data = dict(data)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if (
            isinstance(tp, type)
            and dataclasses.is_dataclass(tp)
            and isinstance(data.get(field.name), Mapping)
        ):
            data[field.name] = _build(tp, data[field.name], f"{prefix}{field.name}.")
    try:
        return from_dict(cls, data)
    except ParameterError:
        raise
    except ConfigError as err:
        raise ParameterError(_name_parameter(str(err), prefix, cls)) from err


def _name_parameter(message: str, prefix: str, cls: type) -> str:
    """'parameter <full dotted name>: ...' where the config error names a field of ``cls``."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    head, sep, rest = message.partition(": ")
    base, bracket, item = head.partition("[")  # "headings[1]": an item of an array
    if sep and base in names:
        where = f"item {item.rstrip(']')}: " if bracket else ""
        return f"parameter '{prefix}{base}': {where}{rest}"
    # __post_init__ checks name the field in their text ("keyframe_distance must be ...")
    for name in sorted(names, key=len, reverse=True):
        if message.startswith((f"{name} ", f"{prefix}{name} ")):
            return f"parameter '{prefix}{name}': {message}"
    where = f" in {prefix.rstrip('.')}" if prefix else ""
    return f"invalid parameters{where}: {message}"
