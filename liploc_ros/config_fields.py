"""Config fields that document themselves, and closed sets of string values.

A setting is described once, where its dataclass declares it: :func:`param` puts the text
in the field's metadata, :func:`config_docs` reads it back by dotted name
(``localizer.top_k``) for ``ros2 param describe``, ``--help`` texts and the tests that hold
the shipped YAML files to the configs. :class:`Choice` is the type of a closed set: a ``str``
enum, so that YAML and ROS strings convert to it and its members still equal those strings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, TypeVar, get_type_hints

from liploc_ros.errors import ConfigError

__all__ = ["Choice", "config_docs", "config_leaves", "field_doc", "param", "set_choice"]

C = TypeVar("C", bound="Choice")

#: the metadata key of a field's description
DOC_KEY = "doc"

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


def param(
    default: Any = dataclasses.MISSING,
    doc: Doc = "",
    *,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its description: ``top_k: int = param(5, "entries per frame")``."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={DOC_KEY: doc})
    return dataclasses.field(default=default, metadata={DOC_KEY: doc})


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
