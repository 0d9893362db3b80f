"""One tf buffer and listener per node, shared by whatever in it reads tf.

A ``tf2_ros.TransformListener`` subscribes /tf and /tf_static and keeps its own copy of
the tree: two of them in one node (sequence mode's tf odometry and ``publish_tf``'s odom ->
base lookup) double the traffic and the memory for nothing. Each user asks
:meth:`SharedTf.buffer`; the first request makes the buffer and its listener.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["SharedTf"]


class SharedTf:
    """The node's tf buffer, made on first use; None where tf2_ros is not installed."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._buffer: Any = None
        self._listener: Any = None

    def buffer(self) -> Any:
        """The shared ``tf2_ros.Buffer`` (listened to); ImportError without tf2_ros."""
        with self._lock:
            if self._buffer is None:
                import tf2_ros

                self._buffer = tf2_ros.Buffer()
                self._listener = tf2_ros.TransformListener(self._buffer, self._node)
            return self._buffer
