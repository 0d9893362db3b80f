"""Bag access shared by both reading passes: open, select, deserialise, report corrupt messages.

The construction pass and the streaming pass of
:class:`~liploc_ros.datasets.rosbag_reader.RosbagSource` read messages the same way: through
``rosbags``' AnyReader (its errors become a :class:`DatasetError` naming the bag), skipping a
message that cannot be deserialised with a rate-limited warning, or raising on it when strict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liploc_ros.errors import DatasetError, LiplocError

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader

__all__ = [
    "MAX_CORRUPT_WARNINGS",
    "MessageProblems",
    "connections",
    "deserialized",
    "header_stamp",
    "open_reader",
    "topic_types",
]

log = logging.getLogger(__name__)

#: corrupt messages logged one by one per topic before the rest are only counted
MAX_CORRUPT_WARNINGS = 10


class open_reader:  # noqa: N801 (used like a function in `with`)
    """AnyReader with its errors turned into :class:`DatasetError` naming the bag."""

    def __init__(self, paths: list[Path], name: Path) -> None:
        self.paths, self.name = paths, name
        self.reader: AnyReader | None = None

    def __enter__(self) -> Any:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        try:
            self.reader = AnyReader(self.paths, default_typestore=get_typestore(Stores.LATEST))
            self.reader.open()
        except Exception as err:
            raise DatasetError(f"cannot open bag {self.name}: {err}") from err
        return self.reader

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None and self.reader.stack is not None:
            self.reader.close()


def topic_types(reader: Any) -> dict[str, str]:
    """Topic -> message type of an open reader (a topic with mixed types says so)."""
    return {name: info.msgtype or "(several types)" for name, info in reader.topics.items()}


def connections(reader: Any, topics: Iterable[str]) -> list:
    """The reader's connections of ``topics``."""
    topics = set(topics)
    return [c for c in reader.connections if c.topic in topics]


def header_stamp(time: Any, ns: int) -> float:
    """Header stamp in seconds; an unset (zero) stamp falls back to the bag's record time."""
    sec, nanosec = int(time.sec), int(time.nanosec)
    if sec == 0 and nanosec == 0:
        return ns * 1e-9
    return sec + nanosec * 1e-9


class MessageProblems:
    """Reports bad messages of one bag: counted and warned about (the first
    :data:`MAX_CORRUPT_WARNINGS` per topic), or raised when ``strict``."""

    def __init__(self, path: Path, *, strict: bool) -> None:
        self.path = path
        self.strict = strict
        #: warnings given per topic in this pass
        self.warned: dict[str, int] = {}

    def reset(self) -> None:
        """Start a new pass: every topic gets its warnings again."""
        self.warned = {}

    def corrupt(
        self, topic: str, stamp: float, err: BaseException, counts: dict[str, int]
    ) -> None:
        """A message that cannot be read: raise when strict, else count it in ``counts``."""
        message = f"{self.path}: corrupt message on {topic} at {stamp:.9f} s: {err}"
        if self.strict:
            raise DatasetError(message) from err
        counts[topic] = counts.get(topic, 0) + 1
        self.warn(topic, message + " (skipped)")

    def warn(self, topic: str, message: str) -> None:
        """Warn about a problem on ``topic`` unless it already had its share of warnings."""
        seen = self.warned.get(topic, 0)
        if seen < MAX_CORRUPT_WARNINGS:
            log.warning("%s", message)
        elif seen == MAX_CORRUPT_WARNINGS:
            log.warning(
                "%s: further problems on %s are counted without a warning", self.path, topic
            )
        self.warned[topic] = seen + 1


def deserialized(
    reader: Any, selected: list, counts: dict[str, int], problems: MessageProblems
) -> Iterator[tuple[str, int, Any]]:
    """(topic, bag time ns, message) of the ``selected`` connections, corrupt messages
    skipped (counted in ``counts``)."""
    try:
        for conn, ns, raw in reader.messages(connections=selected):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as err:  # a corrupt buffer fails in many ways inside rosbags
                problems.corrupt(conn.topic, ns * 1e-9, err, counts)
                continue
            yield conn.topic, ns, msg
    except LiplocError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read bag {problems.path}: {err}") from err
