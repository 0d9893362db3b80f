"""The localizer modes by name: ``mode`` of the node, ``liploc localize`` and ``liploc eval``.

Each entry names the class as ``module:Class`` and is imported only when a mode is opened,
so that listing the modes (``--help``, the node's parameter checks) loads neither torch nor
the filter. A new mode is its class (a :class:`~liploc_ros.localization.mode.LocalizationMode`)
and one entry here, or one :func:`register_mode` call from a plug-in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from liploc_ros.errors import ConfigError

if TYPE_CHECKING:
    from liploc_ros.localization.mode import LocalizationMode

__all__ = ["DEFAULT_MODE", "check_mode", "mode_class", "mode_names", "register_mode"]

_MODES: dict[str, str] = {
    # the frames in time order through the particle filter with odometry (a pose only while
    # the filter tracks)
    "sequence": "liploc_ros.localization.sequence_mode:SequenceMode",
    # every frame alone
    "single": "liploc_ros.localization.single_mode:SingleFrameMode",
}

#: the mode a localizer runs in unless told otherwise
DEFAULT_MODE = "sequence"


def mode_names() -> tuple[str, ...]:
    """The registered modes, in registration order."""
    return tuple(_MODES)


def check_mode(name: object) -> str:
    """``name`` if it is a registered mode; a :class:`ConfigError` naming the modes if not."""
    if not isinstance(name, str) or name not in _MODES:
        raise ConfigError(f"mode must be one of {', '.join(_MODES)}, got {name!r}")
    return name


def register_mode(name: str, target: str) -> None:
    """Register the mode class ``target`` ("package.module:Class") as ``name``."""
    module, _, attr = target.partition(":")
    if not name or not module or not attr:
        raise ConfigError(f"a mode is registered as name and 'module:Class', got {name!r}, "
                          f"{target!r}")  # fmt: skip
    _MODES[name] = target


def mode_class(name: str) -> type[LocalizationMode]:
    """The class of mode ``name`` (imported now)."""
    module, _, attr = _MODES[check_mode(name)].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    cls.name = name
    return cls
