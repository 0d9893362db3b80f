"""Crop headings: which way each map entry's range-image crop faces.

The LiDAR sees all around, but the encoder sees only a 120-degree crop of its range image,
centred straight ahead in the authors' code. A camera that looks the other way (a vehicle
driving a mapped street in the opposite direction) then has nothing in the map to match.
A map can therefore keep several entries per keyframe, each with its crop centred at
another heading (degrees, counter-clockwise from the LiDAR's x axis, as ROS yaw) and its
pose turned by that heading, so that a match also says which way the camera faces.

:func:`parse_headings` is the one spelling of a set of headings, shared by
``liploc build-map --headings``, the map builder node (``build.headings``),
``liploc eval --headings`` and ``liploc localize --headings``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from liploc_ros.errors import ConfigError

__all__ = [
    "DEFAULT_HEADINGS",
    "MAX_HEADINGS",
    "format_headings",
    "heading_turn",
    "parse_headings",
    "turn_pose",
]

#: the forward crop only, as the authors' maps (and every map before headings existed)
DEFAULT_HEADINGS: tuple[float, ...] = (0.0,)
#: more than one crop every 10 degrees adds entries without adding views
MAX_HEADINGS = 36
#: headings closer than this (degrees, around the circle) are one heading: a map stores
#: them as float32, where closer values could not be told apart
_SAME_DEG = 1e-3


def _normalised(deg: float) -> float:
    value = float(deg) % 360.0
    return 0.0 if value >= 360.0 or value == 0.0 else value  # -1e-20 % 360 is 360.0


def _evenly_spaced(count: int, given: Any) -> tuple[float, ...]:
    if not 1 <= count <= MAX_HEADINGS:
        raise ConfigError(
            f"headings {given!r}: a count of evenly spaced headings must be 1 to "
            f"{MAX_HEADINGS} (1 is the forward crop alone), got {count}"
        )
    return tuple(360.0 * i / count for i in range(count))


def _from_list(values: Sequence[Any], given: Any) -> tuple[float, ...]:
    if len(values) == 0:
        raise ConfigError(
            "headings: the list is empty; give at least one heading in degrees (0 is the "
            "forward crop)"
        )
    if len(values) > MAX_HEADINGS:
        raise ConfigError(f"headings: {len(values)} headings, at most {MAX_HEADINGS} are allowed")
    degrees = []
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ConfigError(f"headings {given!r}: {value!r} is not a number of degrees")
        if not math.isfinite(float(value)):
            raise ConfigError(f"headings {given!r}: {value!r} is not a finite number of degrees")
        degrees.append(_normalised(float(value)))
    order = sorted(range(len(degrees)), key=degrees.__getitem__)
    ordered = [degrees[i] for i in order]
    for j in range(len(ordered)):
        a, b = ordered[j - 1], ordered[j]  # j = 0 pairs the last with the first (wrap)
        if len(ordered) > 1 and min(abs(a - b), 360.0 - abs(a - b)) < _SAME_DEG:
            first, second = sorted((order[j - 1], order[j]))
            raise ConfigError(
                f"headings {given!r}: {values[first]!r} and {values[second]!r} are the same "
                "heading (equal modulo 360 degrees, or closer than 0.001)"
            )
    return tuple(ordered)


def _from_text(text: str) -> tuple[float, ...]:
    stripped = text.strip()
    if not stripped:
        raise ConfigError(
            "headings '': give degrees separated by commas (e.g. '0,180') or a count of "
            "evenly spaced headings (e.g. '4')"
        )
    if "," not in stripped:
        try:
            count = int(stripped)
        except ValueError:
            raise ConfigError(
                f"headings {text!r}: a single value is a count of evenly spaced headings (an "
                "integer, e.g. '4'); give degrees with commas, e.g. '0,180' or '90,'"
            ) from None
        if count == 0:
            return DEFAULT_HEADINGS  # "0": the one heading 0, however one reads it
        return _evenly_spaced(count, text)
    parts = [p.strip() for p in stripped.split(",")]
    if parts and parts[-1] == "":
        parts.pop()  # "90," is the one heading 90
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise ConfigError(f"headings {text!r}: {part!r} is not a number of degrees") from None
    return _from_list(values, text)


def parse_headings(value: Any) -> tuple[float, ...]:
    """The crop headings ``value`` names, in degrees in [0, 360), ascending (0 first).

    ``value`` is a list of degrees (``[0, 180]``; any real numbers, taken modulo 360), an
    integer count of evenly spaced headings (``2`` -> (0, 180), ``4`` -> (0, 90, 180, 270)),
    or the same as command-line text (``"0,180"``, ``"4"``; ``"90,"`` is the single heading
    90, ``"0"`` the single heading 0). Duplicates (modulo 360), non-finite values, an empty
    list and counts outside 1 to :data:`MAX_HEADINGS` are :class:`ConfigError`; every
    message starts with "headings".
    """
    if isinstance(value, str):
        return _from_text(value)
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"headings {value!r}: expected degrees or a count, not a boolean")
    if isinstance(value, numbers.Integral):
        return _evenly_spaced(int(value), value)
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist() if value.ndim <= 1 else None
    if isinstance(value, (list, tuple)):
        return _from_list(value, value)
    raise ConfigError(
        f"headings {value!r}: expected a list of degrees, an integer count or text such as '0,180'"
    )


def format_headings(headings: Sequence[float]) -> str:
    """``(0.0, 180.0)`` -> ``"0, 180"`` (for logs and ``liploc map-info``)."""
    return ", ".join(f"{float(h):g}" for h in headings)


def heading_turn(heading_deg: float) -> np.ndarray:
    """4 x 4 rotation about z by ``heading_deg`` (counter-clockwise); quarter turns are
    exact, so the rear entry's pose is exactly the forward one turned around."""
    quarter, rest = divmod(float(heading_deg) % 360.0, 90.0)
    if rest == 0.0:
        c, s = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(quarter)]
    else:
        h = math.radians(heading_deg)
        c, s = math.cos(h), math.sin(h)
    turn = np.eye(4)
    turn[:2, :2] = ((c, -s), (s, c))
    return turn


def turn_pose(pose: np.ndarray, heading_deg: float) -> np.ndarray:
    """The pose of a map entry whose crop faces ``heading_deg``: ``pose @ Rz(heading)``
    (same position; its x axis points where the crop is centred)."""
    return np.asarray(pose, dtype=np.float64) @ heading_turn(heading_deg)
