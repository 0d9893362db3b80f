"""Config fields that document themselves, and closed sets of string values.

A setting is described once, where its dataclass declares it: :func:`param` puts the text
in the field's metadata, :func:`config_docs` reads it back by dotted name
(``localizer.top_k``) for ``ros2 param describe``, ``--help`` texts and the tests that hold
the shipped YAML files to the configs. :class:`Choice` is the type of a closed set: a ``str``
enum, so that YAML and ROS strings convert to it and its members still equal those strings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, TypeVar, get_type_hints

from liploc_ros.errors import ConfigError

__all__ = [
    "Bounds",
    "Choice",
    "check_bounds",
    "config_docs",
    "config_leaves",
    "field_bounds",
    "field_doc",
    "param",
    "set_choice",
]

C = TypeVar("C", bound="Choice")

#: the metadata key of a field's description
DOC_KEY = "doc"
#: ... and of its range
BOUNDS_KEY = "bounds"

#: a description, or a function that writes it when asked (for texts that list a registry)
Doc = str | Callable[[], str]


class Choice(str, Enum):
    """One of a closed set of strings: equal to its value, printed and repr'd as it.

    ``repr`` is the value's so that a config's repr (used in logs and messages) reads as it
    did when the field was a plain string.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The allowed strings, in declaration order."""
        return tuple(str(m.value) for m in cls)

    @classmethod
    def parse(cls: type[C], value: Any, name: str) -> C:
        """``value`` as a member; a :class:`ConfigError` naming ``name`` and the values if not."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (TypeError, ValueError):
            allowed = ", ".join(cls.values())
            raise ConfigError(f"{name} must be one of {allowed}, got {value!r}") from None


def set_choice(obj: Any, name: str, cls: type[Choice], label: str | None = None) -> None:
    """Replace field ``name`` of frozen dataclass ``obj`` by its ``cls`` member (checked).

    For ``__post_init__``: a config built in Python with a plain string holds the member,
    as one built by :func:`liploc_ros.config.from_dict` does.
    """
    object.__setattr__(obj, name, cls.parse(getattr(obj, name), label or name))


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A numeric field's allowed range, written beside the field (:func:`param`), checked by
    :func:`check_bounds` and declared to ROS as the parameter's range."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    integer: bool = False

    @property
    def low(self) -> float:
        """The lower end (inclusive or not); -inf when open."""
        return next((v for v in (self.gt, self.ge) if v is not None), -math.inf)

    @property
    def high(self) -> float:
        """The upper end (inclusive or not); inf when open."""
        return next((v for v in (self.lt, self.le) if v is not None), math.inf)

    def text(self) -> str:
        """'a finite number > 0', 'in [0.5, 1)', 'a positive integer', ..."""
        low = "(" if self.gt is not None else "[" if self.ge is not None else None
        high = ")" if self.lt is not None else "]" if self.le is not None else None
        if self.integer:
            if self.ge == 1 and high is None:
                return "a positive integer"
            what = "an integer"
        else:
            what = "a finite number"
        if low and high:
            return f"{what} in {low}{_num(self.low)}, {_num(self.high)}{high}"
        if low:
            return f"{what} {'>' if low == '(' else '>='} {_num(self.low)}"
        if high:
            return f"{what} {'<' if high == ')' else '<='} {_num(self.high)}"
        return what

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is a number of the field's kind inside the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )


def _num(value: float) -> str:
    return f"{value:g}"


def param(
    default: Any = dataclasses.MISSING,
    doc: Doc = "",
    *,
    factory: Callable[[], Any] | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field with its description and, for numbers, its range:
    ``top_k: int = param(5, "entries per frame", ge=1)``. The range is checked by
    :func:`check_bounds` (a config's ``__post_init__``) and declared to ROS."""
    metadata: dict[str, Any] = {DOC_KEY: doc}
    if any(v is not None for v in (gt, ge, lt, le)):
        if (gt is not None and ge is not None) or (lt is not None and le is not None):
            raise ConfigError("param: give gt or ge, lt or le, not both")
        sample = default if factory is None else factory()
        integer = isinstance(sample, int) and not isinstance(sample, bool)
        metadata[BOUNDS_KEY] = Bounds(gt, ge, lt, le, integer)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_bounds(field: dataclasses.Field) -> Bounds | None:
    """The range :func:`param` gave ``field``; None when it has none."""
    return field.metadata.get(BOUNDS_KEY)


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the first field of dataclass ``obj`` outside its
    range ("``<prefix><name>`` must be a finite number > 0, got -1.0")."""
    for field in dataclasses.fields(obj):
        bounds = field_bounds(field)
        if bounds is None:
            continue
        value = getattr(obj, field.name)
        if not bounds.holds(value):
            raise ConfigError(f"{prefix}{field.name} must be {bounds.text()}, got {value!r}")


def field_doc(field: dataclasses.Field) -> str:
    """The description :func:`param` gave ``field``; '' when it has none."""
    doc = field.metadata.get(DOC_KEY, "")
    return doc() if callable(doc) else str(doc)


def config_leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) of every init field that is not itself a dataclass."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        tp = hints[field.name]
        name = f"{prefix}{field.name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from config_leaves(tp, f"{name}.")
        else:
            yield name, field, tp


def config_docs(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted field name -> description, for every leaf field of ``cls``."""
    return {name: field_doc(field) for name, field, _ in config_leaves(cls, prefix)}
